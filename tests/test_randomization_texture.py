"""Texture randomization: rendered with pybullet's TinyRenderer, reproducible, undone exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import celltwin.envs  # noqa: F401
from celltwin.randomization import RandomizationError
from celltwin.render import camera_matrices
from celltwin.textures import TEXTURES, texture_file, texture_image

WIDTH, HEIGHT = 64, 48


@pytest.fixture(autouse=True)
def tiny_renderer_and_own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLTWIN_RENDERER", "tiny")  # the CPU rasterizer, on any machine
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path / "cache"))


def make(randomization=None, render=True):
    options = ({"render_mode": "rgb_array", "render_width": WIDTH, "render_height": HEIGHT}
               if render else {})
    return gym.make("celltwin/PickPlace-v0", randomization=randomization, **options).unwrapped


def texture(target, values=TEXTURES, **extra):
    return {"target": target, "parameter": "texture", "operation": "set",
            "distribution": {"type": "choice", "values": list(values)}, **extra}


def nominal_frame(seed=0):
    env = make()
    env.reset(seed=seed)
    frame = env.render()
    env.close()
    return frame


def mask_of(env, body_name):
    """Pixels where ``body_name`` is seen, from pybullet's segmentation with render()'s camera."""
    client = env.world.client
    *_, segmentation = client.getCameraImage(
        WIDTH, HEIGHT, *camera_matrices(env.world, width=WIDTH, height=HEIGHT),
        renderer=client.ER_TINY_RENDERER)
    return np.asarray(segmentation).reshape(HEIGHT, WIDTH) == env.world.body(body_name)


# ------------------------------------------------------------------ the textures themselves
def test_textures_are_deterministic_images_cached_as_png():
    from PIL import Image

    for name in TEXTURES[1:]:
        image = texture_image(name)
        assert image.shape[2] == 3 and image.dtype == np.uint8
        texture_image.cache_clear()
        assert np.array_equal(texture_image(name), image)  # drawn again: the same picture
        path = texture_file(name)
        assert np.array_equal(np.asarray(Image.open(path)), image)
        assert texture_file(name) == path  # written once, found again
    assert len({texture_image(name).tobytes() for name in TEXTURES[1:]}) == len(TEXTURES) - 1


# ------------------------------------------------------------------ what a render shows
@pytest.mark.parametrize("target, name", [("table", "noise"), ("arm", "wood")])
def test_texture_changes_only_the_targeted_body_in_the_render(target, name):
    nominal = nominal_frame()
    env = make([texture(target, [name])])
    _, info = env.reset(seed=0)
    frame = env.render()
    assert info["randomization"][f"{target}.texture"] == name
    changed = (frame != nominal).any(axis=2)
    body = mask_of(env, target)
    assert changed.sum() > 0.5 * body.sum() > 10  # most of the body's pixels change...
    assert not (changed & ~body).any()            # ...and nothing else does
    env.close()


def test_drawn_texture_is_reported_and_reproduced_by_the_seed():
    terms = [texture("{object}"), texture("table")]
    a, b = make(terms), make(terms)
    drawn = set()
    for seed in range(6):
        _, info_a = a.reset(seed=seed)
        _, info_b = b.reset(seed=seed)
        assert info_a["randomization"] == info_b["randomization"]
        assert info_a["randomization"]["part.texture"] in TEXTURES
        assert np.array_equal(a.render(), b.render())
        drawn.add(info_a["randomization"]["table.texture"])
    assert len(drawn) > 1
    a.close()
    b.close()


def test_a_reset_draws_what_the_same_terms_draw_at_startup():
    # Resets run a compiled plan that picks names itself; startup terms take the generic path
    # (Choice.sample). From the same generator both must draw the same values, in term order,
    # with numeric terms before, between and after the names.
    mass = {"target": "part", "parameter": "mass_kg", "operation": "set",
            "distribution": {"type": "gaussian", "mean": 0.3, "std": 0.05}}
    noise = {**mass, "target": "arm", "parameter": "action_noise_std"}
    terms = [texture("table"), mass, texture("arm/*"), noise]
    at_reset = make(terms, render=False)
    at_startup = make([{**term, "when": "startup"} for term in terms], render=False)
    at_reset.reset(seed=0)
    at_startup.reset(seed=0)
    for seed in range(5):
        planned = at_reset.randomizer.reset(np.random.default_rng(seed))
        generic = at_startup.randomizer.apply_startup(np.random.default_rng(seed))
        assert len(planned) > 4 and planned == generic
    at_reset.close()
    at_startup.close()


def test_interval_terms_draw_new_textures_between_frames():
    env = make([texture("table", TEXTURES[1:], when="interval", every_n_steps=1)])
    env.reset(seed=0)
    drawn, frames = set(), set()
    for _ in range(6):
        env.step(np.zeros(4))
        drawn.add(env.randomizer.values["table.texture"])
        frames.add(env.render().tobytes())
    assert len(drawn) > 1 and len(frames) > 1
    env.close()


def test_aggressive_preset_textures_the_part_and_the_table():
    env = make("aggressive")
    _, info = env.reset(seed=0)
    drawn = info["randomization"]
    assert {drawn["part.texture"], drawn["table.texture"]} <= set(TEXTURES)
    assert env.render().shape == (HEIGHT, WIDTH, 3)
    env.close()


def test_resets_without_rendering_load_no_texture(monkeypatch):
    env = make([texture("table", TEXTURES[1:]), texture("arm/*", TEXTURES[1:])], render=False)
    calls = []
    client = env.world.client
    load, change = client.loadTexture, client.changeVisualShape
    monkeypatch.setattr(client, "loadTexture", lambda *a, **k: calls.append("load") or load(*a, **k))
    monkeypatch.setattr(client, "changeVisualShape",
                        lambda *a, **k: calls.append("change") or change(*a, **k))
    for seed in range(5):
        env.reset(seed=seed)
    assert calls == []
    env.close()


# ------------------------------------------------------------------ back to the nominal look
@pytest.mark.parametrize("target", ["table", "arm", "floor"])  # built: none, meshes', own
def test_none_after_a_texture_draws_exactly_the_nominal_render(target):
    env, plain = make([texture(target, ["stripes", "none"])]), make()
    shown, checked = None, 0
    for seed in range(8):
        _, info = env.reset(seed=seed)
        frame = env.render()
        drawn = info["randomization"][f"{target}.texture"]
        if drawn == "none" and shown == "stripes":
            plain.reset(seed=seed)
            assert np.array_equal(frame, plain.render()), seed
            checked += 1
        shown = drawn
    assert checked  # the seeds above draw stripes then none at least once
    env.close()
    plain.close()


def test_set_randomization_none_restores_the_nominal_look():
    terms = [texture("table", TEXTURES[1:]), texture("arm/*", TEXTURES[1:]),
             texture("floor", TEXTURES[1:]),
             {**texture("part", [0.5]), "parameter": "color_scale", "operation": "scale"}]
    fresh = make()
    env = make(terms)
    env.reset(seed=0)
    fresh.reset(seed=0)
    nominal = fresh.render()
    assert (env.render() != nominal).any(axis=2).mean() > 0.5
    env.set_randomization(None)
    env.reset(seed=0)
    assert np.array_equal(env.render(), nominal)
    client, fresh_client = env.world.client, fresh.world.client
    for name in env.world.bodies:
        assert (client.getVisualShapeData(env.world.body(name))
                == fresh_client.getVisualShapeData(fresh.world.body(name))), name
    # A texture drawn but never rendered is dropped as well.
    env.set_randomization([texture("table", ["checker"])])
    env.reset(seed=0)
    env.set_randomization(None)
    env.reset(seed=0)
    assert np.array_equal(env.render(), nominal)
    env.close()
    fresh.close()


def test_visual_shape_data_reports_the_texture_ids_bodies_were_built_with():
    env = make([texture("arm", ["stripes"]), texture("table", ["stripes"])])
    client = env.world.client
    flags = getattr(client, "VISUAL_SHAPE_DATA_TEXTURE_UNIQUE_IDS", None)
    arm, table = env.world.body("arm"), env.world.body("table")
    rows = client.getVisualShapeData(arm, flags=flags) if flags is not None else []
    if not rows or len(rows[0]) < 9:
        pytest.skip("this pybullet does not report texture ids")
    built = [row[8] for row in rows]
    assert client.getVisualShapeData(table, flags=flags)[0][8] == -1  # built without a texture
    assert max(built) >= 0  # the arm's meshes come with textures of their own
    env.reset(seed=0)
    env.render()
    # pybullet keeps reporting the ids the shapes were built with; `none` relies on that to
    # put them back, so a pybullet that reported the current texture would show up here.
    assert [row[8] for row in client.getVisualShapeData(arm, flags=flags)] == built
    assert client.getVisualShapeData(table, flags=flags)[0][8] == -1
    env.close()


# ------------------------------------------------------------------ bad terms
@pytest.mark.parametrize("distribution, path, match", [
    ({"type": "choice", "values": ["checker", "chekcer"]}, "terms[0].distribution",
     "did you mean 'checker'"),
    ({"type": "uniform", "low": 0, "high": 1}, "terms[0].distribution", "texture names"),
    ({"type": "choice", "values": [1, 2]}, "terms[0].distribution", "texture names"),
])
def test_bad_texture_values_name_their_path(distribution, path, match):
    with pytest.raises(RandomizationError, match=match) as caught:
        make([{**texture("table"), "distribution": distribution}], render=False)
    assert [p.path for p in caught.value.problems] == [path]


def test_textures_are_set_and_numbers_take_no_texture_names():
    with pytest.raises(RandomizationError) as caught:
        make([{**texture("table"), "operation": "scale"}], render=False)
    assert [(p.path, p.expected) for p in caught.value.problems] == [("terms[0].operation", "set")]
    with pytest.raises(RandomizationError, match="takes numbers") as caught:
        make([{**texture("part", ["checker"]), "parameter": "mass_kg"}], render=False)
    assert [p.path for p in caught.value.problems] == ["terms[0].distribution.values"]
    with pytest.raises(RandomizationError, match="matches nothing"):
        make([texture("tabel")], render=False)
