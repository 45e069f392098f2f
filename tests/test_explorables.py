"""Explorables (issue 17): the data helpers of ``klbook.explorables`` and, in the built site, every
slider of every explorable moved by mouse (1280 px) and by touch (390 px), light and dark mode: every
readout line and every slider's title (its current position's label) are checked at each position.

The browser tests share the Playwright browser and the local server with ``tests/test_browser.py``
(fixtures in ``tests/conftest.py``: one sync Playwright per pytest session). The numbers on the page are compared with the values the chapter
stored (its notebook's output) and, for the two Gaussians, with ``klbook.kl_normal`` itself.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urljoin

import numpy as np
import pytest

from klbook.estimators import mc_kl
from klbook.explorables import (
    SPEC_MIME,
    Explorable,
    beta_vae,
    estimator_sampling,
    forward_reverse,
    render_bokeh,
    state_index,
    two_gaussians,
)
from klbook.gaussian import kl_normal, normal_logpdf
from klbook.mixtures import fit_normal_to_mixture, mixture_logpdf
from tests.test_browser import ROOT, PageLog

#: Pages with explorables and the notebooks that store their data.
PAGES = {
    "book/03_gaussian_kl.html": "book/03_gaussian_kl.ipynb",
    "book/05_vae.html": "book/05_vae.ipynb",
    "book/06_forward_reverse.html": "book/06_forward_reverse.ipynb",
    "book/07_practice.html": "book/07_practice.ipynb",
}
_SPEC = re.compile(r'<script type="application/vnd\.klbook\.explorable\+json">(.*?)</script>', re.DOTALL)


# ------------------------------------------------------------------------------------------------
# Data helpers
# ------------------------------------------------------------------------------------------------

def _small() -> Explorable:
    return two_gaussians([-1.0, 0.0, 2.0], [0.5, 1.0], x=np.linspace(-4, 4, 9))


def test_two_gaussians_readouts_are_kl_normal_in_both_directions() -> None:
    spec = _small().spec()
    for i, mu in enumerate([-1.0, 0.0, 2.0]):
        for j, sigma in enumerate([0.5, 1.0]):
            text = spec["readouts"][0]["values"][state_index([i, j], [3, 2])]
            assert f"D(p‖q) = {kl_normal(0.0, 1.0, mu, sigma):.4f}" in text
            assert f"D(q‖p) = {kl_normal(mu, sigma, 0.0, 1.0):.4f}" in text


def test_two_gaussians_terms_add_up_to_the_divergence() -> None:
    spec = _small().spec()
    terms = np.array(spec["panels"][1]["series"][0]["y"])
    m, s = np.meshgrid([-1.0, 0.0, 2.0], [0.5, 1.0], indexing="ij")
    np.testing.assert_allclose(terms.sum(axis=1), kl_normal(0.0, 1.0, m.ravel(), s.ravel()), rtol=1e-5)


def test_state_index_is_row_major() -> None:
    assert state_index([1, 1], [3, 2]) == 3
    assert state_index([2, 0], [3, 2]) == 4


def test_output_is_deterministic_data_with_short_text_lines() -> None:
    a, b = _small()._repr_mimebundle_(), _small()._repr_mimebundle_()
    assert a == b
    assert json.loads(_SPEC.search(a["text/html"]).group(1)) == json.loads(json.dumps(_small().spec()))
    assert SPEC_MIME in a["text/html"]
    assert all(len(line) <= 74 for line in a["text/plain"].splitlines())


@pytest.mark.parametrize("bad", [{"mu_q": [0.0]}, {"sigma_q": [1.0, -1.0]}, {"sigma_q": [[1.0, 2.0]]}])
def test_bad_grids_raise_value_error(bad: dict) -> None:
    args = {"mu_q": [0.0, 1.0], "sigma_q": [1.0, 2.0], **bad}
    with pytest.raises(ValueError, match="mu_q|sigma_q"):
        two_gaussians(**args)


_MUS = [0.25, 0.5, 1.0]


def _estimators() -> Explorable:
    return estimator_sampling(_MUS, n_samples=100, repeats=400, seed=3)


def _estimates(mu: float, k: str) -> np.ndarray:
    x = np.random.default_rng(3).standard_normal((400, 100))
    return mc_kl(normal_logpdf(x, 0.0, 1.0), normal_logpdf(x, mu, 1.0), estimator=k).estimate


def test_estimator_readouts_are_mc_kl_bias_and_spread() -> None:
    spec = _estimators().spec()
    for i, mu in enumerate(_MUS):
        d = float(kl_normal(0.0, 1.0, mu, 1.0))
        assert spec["sliders"][0]["labels"][i] == f"{mu**2 / 2:.3g}"
        text = spec["readouts"][0]["values"][i]
        assert text.startswith(f"D(q‖p) = {d:.4f} nats, n = 100.")
        for k, sub in (("k1", "₁"), ("k2", "₂"), ("k3", "₃")):
            est = _estimates(mu, k)
            assert f"k{sub} {round(est.mean() - d, 4) + 0.0:+.4f}" in text
            assert f"k{sub} {est.std(ddof=1):.4f}" in text


def test_estimator_bias_and_spread_match_the_closed_forms() -> None:
    # E[k1] = E[k3] = D, E[k2] = D + D^2/2, Var[k1] = 2D per sample
    # (q = N(0, 1), p = N(mu, 1)); within 4 standard errors / 15%.
    bars = np.array(_estimators().spec()["panels"][1]["series"][0]["y"])
    for i, mu in enumerate(_MUS):
        d = mu**2 / 2
        bias, spread = bars[i, :3], bars[i, 3:]
        se = spread / np.sqrt(400)
        assert abs(bias[0]) < 4 * se[0] and abs(bias[2]) < 4 * se[2]
        assert abs(bias[1] - d**2 / 2) < 4 * se[1]
        assert abs(spread[0] / np.sqrt(2 * d / 100) - 1) < 0.15


def test_estimator_densities_hold_the_estimates_in_range() -> None:
    panel = _estimators().spec()["panels"][0]
    width = panel["series"][0]["x"][1] - panel["series"][0]["x"][0]
    for series, k in zip(panel["series"], ("k1", "k2", "k3")):
        for i, mu in enumerate(_MUS):
            rel = _estimates(mu, k) / (mu**2 / 2)
            inside = np.mean((rel >= -1.0) & (rel <= 3.0))
            mass = np.sum(series["y"][i]) * width
            assert abs(mass - inside) < 1e-3


def test_estimator_output_is_deterministic_with_short_text_lines() -> None:
    a, b = _estimators()._repr_mimebundle_(), _estimators()._repr_mimebundle_()
    assert a == b
    assert all(len(line) <= 74 for line in a["text/plain"].splitlines())


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"mu": [0.5]}, "mu"),
        ({"mu": [0.0, 1.0]}, "mu"),
        ({"mu": [0.5, np.nan]}, "mu"),
        ({"n_samples": 1}, "n_samples"),
        ({"repeats": 2.5}, "repeats"),
        ({"rel_range": (1.0, -1.0)}, "rel_range"),
    ],
)
def test_estimator_bad_arguments_raise_value_error(bad: dict, name: str) -> None:
    args = {"mu": [0.5, 1.0], "repeats": 10, **bad}
    with pytest.raises(ValueError, match=name):
        estimator_sampling(**args)


# Chapter 6: forward and reverse fits. The fold and switch separations chapter 6 computes (its stored
# output prints d_fold = 4.824459, d_switch = 5.600164).
_FOLD, _SWITCH = 4.824459, 5.600164
_DS = [1.0, 5.0, 6.5]


def _symmetric(d: float) -> tuple[list, list, list]:
    return [0.5, 0.5], [-d / 2, d / 2], [1.0, 1.0]


def _forward_reverse() -> Explorable:
    return forward_reverse(_DS, fold=_FOLD, switch=_SWITCH, x=np.linspace(-6, 6, 13))


def test_forward_reverse_readouts_are_klbooks_fits() -> None:
    spec = _forward_reverse().spec()
    assert [s["name"] for s in spec["sliders"]] == ["separation"]  # one weight: no weight slider
    for i, d in enumerate(_DS):
        fwd = fit_normal_to_mixture(*_symmetric(d), "forward")
        assert spec["readouts"][0]["values"][i] == (
            f"d = {d:.2f}, w = 0.50: forward fit μ = +0.000, σ = {fwd.sigma:.3f}, "
            f"D(p‖q_F) = {fwd.divergence:.4f} nats")
        text = spec["readouts"][1]["values"][i]
        centred = fit_normal_to_mixture(*_symmetric(d), "reverse")
        assert f"μ = +0.000, σ = {centred.sigma:.3f}, D(q‖p) = {centred.divergence:.4f}" in text
        if d < _FOLD:
            assert text.startswith(f"Reverse, d < d_fold = {_FOLD:.4f}: 1 local minimum:")
            assert text.endswith("(global)")
            continue
        side = fit_normal_to_mixture(*_symmetric(d), "reverse", init=(d / 2, 1.0))
        assert side.mu > 1.0 and "3 local minima" in text
        for sign in ("-", "+"):
            assert f"μ = {sign}{side.mu:.3f}, σ = {side.sigma:.3f}, D(q‖p) = {side.divergence:.4f}" in text
        # the global minimum: the centred fit before the switch, the two one-mode fits after it
        globals_ = text.count("(global)")
        assert globals_ == (1 if d < _SWITCH else 2)
        assert (f"D(q‖p) = {centred.divergence:.4f} (global)" in text) == (d < _SWITCH)


def test_forward_reverse_curves_and_points() -> None:
    spec = _forward_reverse().spec()
    densities, divergences = (p["series"] for p in spec["panels"])
    x = np.linspace(-6, 6, 13)
    for i, d in enumerate(_DS):
        p = np.exp(mixture_logpdf(x, *_symmetric(d)))
        np.testing.assert_allclose(densities[0]["y"][i], np.where(p < 1e-6, 0, p), rtol=5e-3, atol=0)  # 3 digits
    # reverse minima: two slots for global ones, two for the others, empty (no NaN) where absent
    global_1, global_2, other_1, other_2 = densities[2:]
    assert all(s["optional"] and len(s["x"]) == 13 for s in densities[2:])
    shown = [[len(s["y"][i]) // 13 for s in densities[2:]] for i in range(len(_DS))]
    # d = 1: the centred minimum; d = 5: centred (global) and two one-mode; 6.5: two one-mode (global), centred
    assert shown == [[1, 0, 0, 0], [1, 0, 1, 1], [1, 1, 1, 0]]
    centred = fit_normal_to_mixture(*_symmetric(1.0), "reverse")
    q = np.exp(normal_logpdf(x, centred.mu, centred.sigma))
    np.testing.assert_allclose(global_1["y"][0], np.where(q < 1e-6, 0, q), rtol=5e-3, atol=0)
    points, stars = divergences[5], divergences[6]
    assert [len(v) for v in points["y"]] == [1, 3, 3]
    assert [len(v) for v in stars["y"]] == [1, 1, 2]
    assert all(len(a) == len(b) for a, b in zip(points["x"], points["y"]))
    fold_line, switch_line = divergences[3], divergences[4]
    for i in range(len(_DS)):
        np.testing.assert_allclose(fold_line["x"][i], [_FOLD, _FOLD], rtol=1e-6)  # 6 significant digits
        np.testing.assert_allclose(switch_line["x"][i], [_SWITCH, _SWITCH], rtol=1e-6)
    assert json.loads(json.dumps(spec)) == spec  # plain, finite JSON


def test_forward_reverse_weight_slider_breaks_the_symmetry() -> None:
    """At w = 0.8 the heavier left component holds the global reverse fit; the fold and switch lines of
    the symmetric mixture are drawn at w = 0.5 only; the weight slider starts at 0.5."""
    ds, ws = [1.0, 6.5], [0.5, 0.8]
    spec = forward_reverse(ds, ws, fold=_FOLD, switch=_SWITCH, x=np.linspace(-6, 6, 13)).spec()
    assert spec["sliders"][1]["labels"] == ["0.50", "0.80"] and spec["sliders"][1]["start"] == 0
    divergences = spec["panels"][1]["series"]
    for i, d in enumerate(ds):
        for j, w in enumerate(ws):
            k = state_index([i, j], [len(ds), len(ws)])
            mixture = ([w, 1 - w], [-d / 2, d / 2], [1.0, 1.0])
            fwd = fit_normal_to_mixture(*mixture, "forward")
            assert spec["readouts"][0]["values"][k].startswith(f"d = {d:.2f}, w = {w:.2f}: forward fit "
                                                               f"μ = {fwd.mu:+.3f}, σ = {fwd.sigma:.3f}")
            assert (divergences[3]["x"][k] != []) == (w == 0.5)  # the fold line
            assert (divergences[4]["x"][k] != []) == (w == 0.5)  # the switch line
    k = state_index([1, 1], [2, 2])  # d = 6.5, w = 0.8
    heavy = fit_normal_to_mixture([0.8, 0.2], [-3.25, 3.25], [1.0, 1.0], "reverse", init=(-3.25, 1.0))
    light = fit_normal_to_mixture([0.8, 0.2], [-3.25, 3.25], [1.0, 1.0], "reverse", init=(3.25, 1.0))
    assert heavy.mu < -3 and light.mu > 3 and heavy.divergence < light.divergence
    text = spec["readouts"][1]["values"][k]
    assert text.startswith("Reverse, w = 0.80 (d_fold and d_switch belong to w = 0.5): 2 local minima:")
    assert f"μ = {heavy.mu:+.3f}, σ = {heavy.sigma:.3f}, D(q‖p) = {heavy.divergence:.4f} (global)" in text
    assert text.endswith(f"μ = {light.mu:+.3f}, σ = {light.sigma:.3f}, D(q‖p) = {light.divergence:.4f}")
    script, _ = render_bokeh(spec)
    assert '"start":0,"end":1,"value":0' in script.replace(" ", "")  # the weight slider shows w = 0.5


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"separations": [1.0]}, "separations"),
        ({"separations": [2.0, 1.0]}, "separations"),
        ({"separations": [-1.0, 1.0]}, "separations"),
        ({"separations": [[1.0, 2.0]]}, "separations"),
        ({"fold": 6.0}, "fold"),
        ({"switch": np.inf}, "switch"),
        ({"start_sigmas": ()}, "start_sigmas"),
        ({"start_sigmas": (1.0, -1.0)}, "start_sigmas"),
        ({"weights": [0.5, 0.5]}, "weights"),
        ({"weights": [0.0, 0.5]}, "weights"),
        ({"weights": [1.0]}, "weights"),
        ({"weights": [[0.5]]}, "weights"),
        ({"weights": []}, "weights"),
    ],
)
def test_forward_reverse_bad_arguments_raise_value_error(bad: dict, name: str) -> None:
    args = {"separations": [1.0, 2.0], "fold": _FOLD, "switch": _SWITCH, **bad}
    with pytest.raises(ValueError, match=name):
        forward_reverse(**args)


# Chapter 5: beta-VAEs. Untrained models with made-up final histories: the builder trains nothing and
# only reads what it is given.
def _beta_runs() -> dict:
    from klbook.models import VAE

    return {beta: (VAE(latent_dim=4, seed=seed), [{"test_kl": 9.0}, {"test_kl": rate,
                                                                      "test_reconstruction": dist}])
            for beta, seed, rate, dist in ((0.5, 1, 3.14159, 20.005), (2.0, 2, 0.004, 25.5))}


def _digits(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    from klbook.data import load_digits

    data = load_digits()
    return data.x_test[:n], data.y_test[:n]


def test_beta_vae_readouts_scatter_and_images_are_the_models() -> None:
    import torch

    from klbook.models import decode_array, encode_array

    runs = _beta_runs()
    x, y = _digits()
    spec = beta_vae(runs, x, y, active_threshold=0.01, n_samples=5, columns=3, seed=4).spec()
    assert spec["sliders"][0]["labels"] == ["0.5", "2.0"]
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(4)).numpy()
    scatter, image = spec["panels"][0]["series"], spec["panels"][1]["series"][0]
    for i, (beta, (model, history)) in enumerate(sorted(runs.items())):
        text = spec["readouts"][0]["values"][i]
        rate, dist = history[-1]["test_kl"], history[-1]["test_reconstruction"]
        assert text.startswith(f"β = {spec['sliders'][0]['labels'][i]}: rate R = {rate:.2f} nats, "
                               f"distortion D = {dist:.2f} nats, −ELBO = D + R = {rate + dist:.2f} nats")
        mu = encode_array(model, x)
        activity = mu.var(axis=0)
        assert f"{int((activity > 0.01).sum())} of 4 units active" in text
        first, second = np.argsort(-activity, kind="stable")[:2]
        assert f"scatter: z{first + 1} (A = {activity[first]:.3f}) against z{second + 1}" in text
        for series in scatter:
            rows = y == int(series["label"])
            # 3 significant digits
            np.testing.assert_allclose(series["x"][i], mu[rows, first], rtol=5e-3, atol=1e-12)
            np.testing.assert_allclose(series["y"][i], mu[rows, second], rtol=5e-3, atol=1e-12)
        mosaic = np.array(image["y"][i])
        assert mosaic.shape == (2 * 8 + 1, 3 * 8 + 2)
        decoded = decode_array(model, z).reshape(5, 8, 8)
        for n in range(5):
            r, c = divmod(n, 3)
            np.testing.assert_allclose(mosaic[9 * r:9 * r + 8, 9 * c:9 * c + 8], decoded[n], atol=0.0051)
        assert np.all(mosaic[8, :] == 0) and np.all(mosaic[9:, 18:] == 0)  # gap and empty slot: white
    lo, hi = spec["panels"][0]["x_range"]
    assert lo == -hi and all(abs(v) <= hi for s in scatter for state in s["x"] + s["y"] for v in state)


def test_beta_vae_output_is_deterministic_with_short_text_lines() -> None:
    x, y = _digits()
    a = beta_vae(_beta_runs(), x, y)._repr_mimebundle_()
    b = beta_vae(_beta_runs(), x, y)._repr_mimebundle_()
    assert a == b
    assert all(len(line) <= 74 for line in a["text/plain"].splitlines())


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ({"runs": {}}, "runs"),
        ({"runs": "one"}, "runs"),
        ({"x": np.zeros((3, 10))}, "x"),
        ({"x": np.zeros(64)}, "x"),
        ({"labels": np.zeros(3)}, "labels"),
        ({"n_samples": 0}, "n_samples"),
        ({"columns": 2.0}, "columns"),
        ({"active_threshold": -1.0}, "active_threshold"),
    ],
)
def test_beta_vae_bad_arguments_raise_value_error(bad: dict, name: str) -> None:
    x, y = _digits()
    args = {"runs": _beta_runs(), "x": x, "labels": y, **bad}
    with pytest.raises(ValueError, match=name):
        beta_vae(**args)


def test_beta_vae_refuses_a_run_that_is_not_a_trained_vae() -> None:
    x, y = _digits()
    runs = _beta_runs()
    runs[1.0] = (object(), [{"test_kl": 1.0, "test_reconstruction": 2.0}])
    with pytest.raises(ValueError, match="runs"):
        beta_vae(runs, x, y)


@pytest.mark.parametrize("build", [_small, _estimators, _forward_reverse])
def test_render_shows_each_slider_position_as_its_label(build) -> None:
    spec = build().spec()
    script, _ = render_bokeh(spec)
    for slider in spec["sliders"]:
        # the script holds the labels as JSON inside a JS string: non-ASCII as \\uXXXX
        assert json.dumps(slider["labels"])[1:-1].replace("\\", "\\\\").replace(" ", "") in script.replace(" ", "")
    assert "CustomJSTickFormatter" in script and '"show_value":false' not in script.replace(" ", "")


def test_render_has_no_random_ids() -> None:
    """Bokeh's random UUIDs (document, element) are replaced by names from the spec: a build gives the same
    page every time (its other ids count models, the same in every fresh build)."""
    spec = _small().spec()
    script, div = render_bokeh(spec)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert not uuid.search(script) and not uuid.search(div)
    element = re.search(r'id="([^"]+)"', div).group(1)
    assert element.startswith(f"klbook-{spec['name']}-") and element in script


def test_render_draws_images_and_scatter_panels() -> None:
    x, y = _digits()
    script, _ = render_bokeh(beta_vae(_beta_runs(), x, y).spec())
    assert "Image" in script and "Scatter" in script


# ------------------------------------------------------------------------------------------------
# The built site
# ------------------------------------------------------------------------------------------------

def _stored_specs(notebook: str) -> list[dict]:
    nb = json.loads((ROOT / notebook).read_text(encoding="utf8"))
    specs = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            markup = "".join(output.get("data", {}).get("text/html", ""))
            match = _SPEC.search(markup)
            if match:
                specs.append(json.loads(match.group(1)))
    return specs


def _shadow_text(locator) -> str:
    """The text a Bokeh widget shows (its shadow root holds style sheets too)."""
    return locator.evaluate("e => [...(e.shadowRoot || e).children].filter(c => c.tagName !== 'STYLE')"
                            ".map(c => c.textContent).join('')")


#: Every legend entry of the page's explorables: its label, whether the legend lists it, whether its curve
#: has data at the current state.
_LEGEND_ITEMS = """() => Bokeh.documents.flatMap(d => [...d.all_models])
    .filter(m => m.constructor.name === 'LegendItem' || m.type === 'LegendItem')
    .map(i => [String(i.label?.value ?? i.label), i.visible, i.renderers.some(r => r.data_source.data.y.length > 0)])"""


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("path", list(PAGES))
def test_every_slider_shows_klbooks_values(browser, base_url, path: str, width: int, mode: str) -> None:
    touch = width < 1000
    context = browser.new_context(color_scheme=mode, viewport={"width": width, "height": 844},
                                  has_touch=touch, is_mobile=touch, service_workers="block")
    log = PageLog(base_url)

    def route(route) -> None:
        url = route.request.url
        if url.startswith((base_url, "data:", "blob:", "about:")):
            route.continue_()
        else:
            log.external_requests.append(url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and log.console_errors.append(m.text))
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    try:
        page.goto(urljoin(base_url, path))
        page.wait_for_selector("div.klbook-explorable-figure .noUi-handle", timeout=30000)
        for spec in _stored_specs(PAGES[path]):
            frame = page.locator(f'div.klbook-explorable-figure[data-name="{spec["name"]}"]')
            shape = [len(s["labels"]) for s in spec["sliders"]]
            targets = frame.locator(".noUi-base")
            handles = frame.locator(".noUi-handle")
            assert targets.count() == len(shape)
            for i, n in enumerate(shape):
                for fraction in (0.0, 0.3, 0.75, 1.0):
                    want = round(fraction * (n - 1))
                    targets.nth(i).scroll_into_view_if_needed()
                    box = targets.nth(i).bounding_box()
                    x = box["x"] + min(max(box["width"] * want / (n - 1), 1), box["width"] - 1)
                    y = box["y"] + box["height"] / 2
                    if touch:
                        page.touchscreen.tap(x, y)
                    else:
                        page.mouse.click(x, y)
                    page.wait_for_timeout(400)  # noUiSlider ignores taps during its 300 ms tap animation
                    positions = [round(float(handles.nth(k).get_attribute("aria-valuenow")))
                                 for k in range(len(shape))]
                    assert positions[i] == want, (spec["name"], i, fraction, positions)
                    k = state_index(positions, shape)
                    for r, readout in enumerate(spec["readouts"]):
                        text = _shadow_text(frame.locator(".klbook-explorable-readout").nth(r))
                        assert text == readout["values"][k], (spec["name"], r, k)
                    # a legend lists exactly the curves drawn at this state (some are absent at some)
                    items = page.evaluate(_LEGEND_ITEMS)
                    assert items, "no legend entries found (has BokehJS renamed its LegendItem model?)"
                    wrong = [(label, listed) for label, listed, drawn in items if listed != drawn]
                    assert not wrong, f"{spec['name']} at state {k}: legend entries (label, listed) without or for no curve: {wrong}"
                    shown = _shadow_text(frame.locator(".klbook-explorable-readout").first)
                    for j, slider in enumerate(spec["sliders"]):
                        # "label: value", the value formatted as the position's label
                        title = frame.locator(".bk-slider-title").nth(j).text_content()
                        assert title.strip() == f"{slider['label']}: {slider['labels'][positions[j]]}"
                    if spec["name"] == "two-gaussians":
                        mu = float(spec["sliders"][0]["labels"][positions[0]])
                        sigma = float(spec["sliders"][1]["labels"][positions[1]])
                        assert f"D(p‖q) = {kl_normal(0.0, 1.0, mu, sigma):.4f}" in shown
                        assert f"D(q‖p) = {kl_normal(mu, sigma, 0.0, 1.0):.4f}" in shown
            column = page.locator("main article, article.bd-article").first.bounding_box()
            box = frame.bounding_box()
            assert box["x"] >= column["x"] - 1 and box["x"] + box["width"] <= column["x"] + column["width"] + 1
            frame.scroll_into_view_if_needed()
            shots = ROOT / "test-artifacts" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / f"explorable-{spec['name']}-{width}-{mode}.png"))
        assert not log.problems(), log.problems()
    finally:
        context.close()



#: At a phone's width the readouts wrap onto more lines than the height reserved for them (one line each).
PHONE_WRAP_PX = 40


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("path", list(PAGES))
def test_figures_keep_their_place_until_drawn(browser, base_url, path: str, width: int) -> None:
    """Before BokehJS draws an explorable (it loads after the first screen of math), the figure's box
    already has the height it will have, so the page does not move by half a screen when it appears;
    if BokehJS cannot load, the box does not stay an empty gap."""
    heights = "() => Array.from(document.querySelectorAll('div.klbook-explorable-figure'), " \
              "f => f.getBoundingClientRect().height)"

    def measure(bokeh: str) -> list[float]:
        context = browser.new_context(viewport={"width": width, "height": 844}, service_workers="block")
        held = []  # BokehJS requests left unanswered while the page is measured
        answer = {"held": held.append, "failed": lambda route: route.abort(),
                  "drawn": lambda route: route.continue_()}[bokeh]
        context.route("**/_static/bokeh/*.js", lambda route: answer(route))
        page = context.new_page()
        try:
            page.goto(urljoin(base_url, path), wait_until="load")
            if bokeh == "drawn":
                page.wait_for_selector("div.klbook-explorable-figure .noUi-handle", timeout=30000)
            page.wait_for_timeout(500)
            return page.evaluate(heights)
        finally:
            for route in held:
                route.abort()
            context.close()

    drawn, reserved, failed = measure("drawn"), measure("held"), measure("failed")
    assert drawn and all(h > 300 for h in drawn), f"{path}: explorables not drawn ({drawn})"
    slack = 1.0 if width >= 1000 else PHONE_WRAP_PX
    assert all(d - slack <= r <= d + 1.0 for r, d in zip(reserved, drawn)), \
        f"{path} at {width} px: figure heights before BokehJS {reserved} px, drawn {drawn} px"
    assert all(h < 50 for h in failed), f"{path}: an empty box of {failed} px where BokehJS failed to load"
