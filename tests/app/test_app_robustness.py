"""AppTest for Fool the model after the sidebar's image changes: every class it names is the new image's.

The page has no class widget of its own: the attack starts from the model's prediction. A person who opens it on
the default sample and then picks another must see the attack, Grad-CAM and search of the new image, never the old.
"""

from streamlit.testing.v1 import AppTest

from cnn_explorer.images import load_image, sample_bytes
from cnn_explorer.pixels import image_pixels
from cnn_explorer.robustness import attack
from cnn_explorer.zoo import load_model

PAGE = "pages/robustness.py"


def _captions(at: AppTest) -> list[str]:
    return [str(c.value) for c in at.caption]


def test_another_sample_is_attacked_from_its_own_prediction(app: AppTest, expected) -> None:
    app.switch_page(PAGE).run()
    model_name = expected.default_model()
    first, _ = expected.default_top()
    assert any(c.startswith(f"Original: **{first}**") for c in _captions(app)), _captions(app)

    sample, best = expected.sample_predicted_otherwise(model_name)
    app.sidebar.selectbox(key="sample").select(sample).run()

    assert not app.exception, [e.value for e in app.exception]
    model = load_model(model_name)
    result = attack(model, image_pixels(model, load_image(sample_bytes(sample))), "fgsm", 4 / 255)
    assert result.before.top[0][1] == best
    captions = _captions(app)
    assert any(c.startswith(f"Original: **{best}** ({result.before.top[0][2]:.1%})") for c in captions), captions
    assert any(c.startswith(f"Original: Grad-CAM for **{best}**") for c in captions), captions
    assert any(c.startswith(f"Adversarial: **{result.after.top[0][1]}**") for c in captions), captions
    assert app.dataframe[0].value["before"].iloc[0] == f"{best} · {result.before.top[0][2]:.2%}"
