import sympy as sp

from diffnb.symbolic import dpm_solver as sd
from diffnb.symbolic.ddpm import is_zero

Q = (sp.Rational(2, 3), sp.Rational(-5, 7), sp.Rational(3, 11))  # a point of the test family


def test_phi_closed_forms_and_recursion():
    z = sp.Symbol("z", positive=True)
    p = [None] + [sd.phi_expr(k, z) for k in (1, 2, 3)]
    assert is_zero(p[1] - (sp.exp(z) - 1) / z)
    for k in (1, 2):
        assert is_zero(p[k + 1] - (p[k] - 1 / sp.factorial(k)) / z)
    assert sp.limit(p[3], z, 0) == sp.Rational(1, 6)


def test_phi_integrals():
    S = sd.dpm_symbols()
    for n in (0, 1):
        lam_t = S.lam_s + S.h
        assert is_zero(sd.phi_integral(n, -1) - sp.exp(-lam_t) * S.h ** (n + 1) * sd.phi_expr(n + 1, S.h))
        assert is_zero(sd.phi_integral(n, 1) - sp.exp(lam_t) * S.h ** (n + 1) * sd.phi_expr(n + 1, -S.h))


def test_variation_of_constants_and_the_change_to_lambda():
    residual, _ = sd.variation_of_constants_residual()
    assert residual == 0
    assert sp.simplify(sd.lambda_kernel_residual()) == 0
    assert all(sp.simplify(e) == 0 for e in sd.data_kernel_residual())
    rhs, seed_form = sd.pp_ode_coefficients()
    assert sp.simplify(rhs - seed_form) == 0


def test_integrating_factor_seed_fails_correct_passes():
    S = sd.dpm_symbols()
    assert sd.integrating_factor_residual(sd.correct_integrating_factor(), S.tau, S.f) == 0
    assert sd.integrating_factor_residual(sd.seed_integrating_factor(), S.tau, S.f) != 0


def test_first_order_updates_are_ddim():
    assert is_zero(sd.dpm1_update() - sd.ddim_update_ode())
    assert is_zero(sd.dpm_pp1_update() - sd.ddim_update_ode())


def test_weights_reproduce_polynomials():
    """sum_j w_j p(f_j H) = sum_n H^{n+1} phi_{n+1}(z) p^{(n)}(0) for p of degree < q."""
    H, z, u = sp.symbols("H z u")
    fracs = [0, sp.Rational(1, 3), sp.Rational(2, 3)]
    w = sd.interpolation_weights(H, z, fracs, terms=5)  # phi_k as (the same) polynomials on both sides
    for p in (sp.Integer(1), u, u**2):
        lhs = sum(wj * p.subs(u, f * H) for wj, f in zip(w, fracs))
        rhs = sum(H ** (n + 1) * sd.phi_series(n + 1, z, 5) * sp.diff(p, u, n).subs(u, 0) for n in range(3))
        assert sp.expand(lhs - rhs) == 0


def test_local_orders_symbolic_dpm_solver_2_general_r():
    P = sd.small_test_problem()  # symbolic coefficients: a proof for the whole family
    y, h, _ = sd.singlestep_series([sp.Symbol("r", positive=True)], "eps", K=3, P=P)
    assert sd.local_order(y, h, P, K=3)[0] == 3


def test_local_orders_on_a_point_of_the_family():
    P = sd.small_test_problem(Q)
    cases = [([], "eps", 2), ([], "x0", 2), ([sp.Rational(1, 2)], "x0", 3),
             ([sp.Rational(1, 3), sp.Rational(2, 3)], "eps", 4),
             ([sp.Rational(1, 3), sp.Rational(1, 2)], "eps", 3)]  # r2 != 2/3: third order lost
    for nodes, kind, p in cases:
        y, h, _ = sd.singlestep_series(nodes, kind, K=p, P=P)
        assert sd.local_order(y, h, P, K=p)[0] == p, (nodes, kind)
    for k in (2, 3):
        y, h, _ = sd.multistep_series(k, "x0", K=k + 1, P=P)
        assert sd.local_order(y, h, P, K=k + 1)[0] == k + 1
    y, h, _ = sd.seed_dpm2_series(K=3, P=P)
    assert sd.local_order(y, h, P, K=3)[0] == 3


def test_sde_transition_and_the_seeds_last_formula():
    T = sd.sde_transition()
    S = T.S
    lam_t = T.lam_t
    assert T.phi_residual == 0
    assert is_zero(T.x_coef - T.sigma(lam_t) / T.sigma(S.lam_s) * sp.exp(-S.h))
    assert is_zero(T.x0_coef - T.alpha(lam_t) * (1 - sp.exp(-2 * S.h)))
    assert is_zero(T.variance - T.sigma(lam_t) ** 2 * (1 - sp.exp(-2 * S.h)))
    formula, h = sd.seed_sde_step()
    assert is_zero(formula.coeff(S.zeta) ** 2 - S.sigma_t**2 * (1 - sp.exp(-2 * h)))
