import pytest
import torch
from torch.nn import functional as F

from mlclf_hub.modeling_multilabel import multilabel_loss, pool_hidden_states
from tests.tiny_models import FAMILIES, tiny_model


def _batch(num_labels: int = 3):
    torch.manual_seed(0)
    input_ids = torch.randint(5, 99, (2, 7))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 4:] = 0
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])[:, :num_labels]
    return input_ids, attention_mask, labels


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_every_backbone_family_trains(family, pooling):
    model = tiny_model(family, pooling=pooling).train()
    input_ids, attention_mask, labels = _batch()
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=torch.zeros_like(input_ids),
        labels=labels,
    )
    assert out.logits.shape == (2, 3)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.classifier.weight.grad is not None
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_padding_does_not_change_mean_or_max_pooled_logits():
    for pooling in ("mean", "max"):
        model = tiny_model("bert", pooling=pooling)
        ids = torch.tensor([[2, 7, 8, 3]])
        padded = torch.tensor([[2, 7, 8, 3, 0, 0]])
        short = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        long = model(input_ids=padded, attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]])).logits
        assert torch.allclose(short, long, atol=1e-5), pooling


def test_pooling_modes_by_hand():
    hidden = torch.tensor([[[1.0, -1.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool_hidden_states(hidden, mask, "cls"), torch.tensor([[1.0, -1.0]]))
    assert torch.equal(pool_hidden_states(hidden, mask, "mean"), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(pool_hidden_states(hidden, mask, "max"), torch.tensor([[3.0, 5.0]]))
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_hidden_states(hidden, mask, "sum")


def test_loss_is_bce_and_pos_weight_and_focal_change_it():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.2, 1.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    plain = multilabel_loss(logits, labels)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(logits, labels))

    weight = torch.tensor([1.0, 4.0, 2.0])
    weighted = multilabel_loss(logits, labels, pos_weight=weight)
    by_hand = -(weight * labels * F.logsigmoid(logits) + (1 - labels) * F.logsigmoid(-logits)).mean()
    assert torch.allclose(weighted, by_hand)

    probs = torch.sigmoid(logits)
    p_t = probs * labels + (1 - probs) * (1 - labels)
    focal_by_hand = (-(torch.log(p_t)) * (1 - p_t) ** 2).mean()
    assert torch.allclose(multilabel_loss(logits, labels, focal_gamma=2.0), focal_by_hand, atol=1e-6)
    assert multilabel_loss(logits, labels, focal_gamma=2.0) < plain


def test_model_uses_loss_settings_from_config():
    input_ids, attention_mask, labels = _batch()
    plain = tiny_model("bert")
    weighted = tiny_model("bert", pos_weight=[5.0, 5.0, 5.0], focal_gamma=1.0)
    weighted.load_state_dict(plain.state_dict())
    a = plain(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    b = weighted(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert torch.equal(a.logits, b.logits)
    expected = multilabel_loss(b.logits, labels, torch.tensor([5.0, 5.0, 5.0]), 1.0)
    assert torch.allclose(b.loss, expected)
    assert not torch.allclose(a.loss, b.loss)


def test_wrong_label_shape_is_rejected():
    model = tiny_model("bert")
    input_ids, attention_mask, _ = _batch()
    with pytest.raises(
        ValueError, match=r"labels must be multi-hot of shape \(batch, num_labels\) = \(2, 3\), got \(2,\)"
    ):
        model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0.0, 1.0]))


def test_head_is_initialised_small_and_tuple_output():
    model = tiny_model("bert")
    assert model.classifier.weight.std() < 0.05
    assert torch.count_nonzero(model.classifier.bias) == 0
    input_ids, attention_mask, labels = _batch()
    loss, logits = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=False)
    assert logits.shape == (2, 3) and loss.ndim == 0
