"""The domain score's classifier on real demo-world images: it separates the two domains on faces it never
saw, so a translation it calls anime left the photo domain."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pda_data.annotations.anime_draw import draw_anime_face
from pda_data.demo.faces import human_portrait
from pda_train.inference.domain import anime_probabilities, anime_share, train_domain_classifier

SIZE = 64
pytestmark = pytest.mark.usefixtures("one_thread")


def _small(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def domains() -> dict[str, list[np.ndarray]]:
    """Demo anime portraits and demo human photos, a train set and an unseen set of each (other seeds)."""
    anime_rng, human_rng = np.random.default_rng(5), np.random.default_rng(6)
    anime = [_small(draw_anime_face(anime_rng).image) for _ in range(20)]
    human = [_small(human_portrait(human_rng)[0]) for _ in range(20)]
    return {"anime": anime[:14], "human": human[:14], "anime_new": anime[14:], "human_new": human[14:]}


def test_classifier_separates_unseen_faces(domains: dict[str, list[np.ndarray]]) -> None:
    clf = train_domain_classifier(domains["anime"], domains["human"], SIZE, seed=0, steps=120)
    assert clf.counts == {"anime_train": 10, "anime_heldout": 4, "human_train": 10, "human_heldout": 4}
    assert clf.heldout_accuracy >= 0.875  # at most one of the 8 held-out images wrong
    assert anime_share(clf, domains["anime_new"]) >= 5 / 6
    assert anime_share(clf, domains["human_new"]) <= 1 / 6
    p = anime_probabilities(clf, domains["anime_new"] + domains["human_new"])
    assert p.shape == (12,) and ((p >= 0) & (p <= 1)).all()


def test_classifier_is_seeded(domains: dict[str, list[np.ndarray]]) -> None:
    a = train_domain_classifier(domains["anime"], domains["human"], SIZE, seed=3, steps=5)
    b = train_domain_classifier(domains["anime"], domains["human"], SIZE, seed=3, steps=5)
    images = domains["anime_new"] + domains["human_new"]
    np.testing.assert_allclose(anime_probabilities(a, images), anime_probabilities(b, images), atol=1e-6)


def test_too_few_images_is_a_clear_error(domains: dict[str, list[np.ndarray]]) -> None:
    with pytest.raises(ValueError, match="needs 2\\+ anime and 2\\+ human train images, got 1 and 14"):
        train_domain_classifier(domains["anime"][:1], domains["human"], SIZE)
