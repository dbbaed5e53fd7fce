"""The training GRU (GruMean: one product for all steps' weight gradients) is nn.GRU + mean pooling."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avs.models.gru import GruTextEncoder


def torch_gru_mean(enc: GruTextEncoder, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    packed = pack_padded_sequence(enc.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
    states, _ = pad_packed_sequence(enc.gru(packed)[0], batch_first=True)
    return states.sum(dim=1) / lengths[:, None]


@pytest.mark.parametrize("lengths", [[5, 1, 9, 9, 3, 1, 7], [4, 4, 4], [1]])
def test_training_gru_matches_nn_gru_outputs_and_gradients(lengths):
    torch.manual_seed(0)
    enc = GruTextEncoder(50, embed_dim=12, hidden=16)
    lengths = torch.tensor(lengths)
    ids = torch.randint(1, 50, (len(lengths), int(lengths.max()) + 2))  # padded wider than the longest
    weight = torch.randn(len(lengths), 16)
    results = []
    for fn in (enc.forward, lambda i, n: torch_gru_mean(enc, i, n)):
        enc.zero_grad(set_to_none=True)
        out = fn(ids, lengths)
        (out * weight).sum().backward()
        results.append((out.detach(), {k: p.grad.clone() for k, p in enc.named_parameters()}))
    (ours, g_ours), (ref, g_ref) = results
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert g_ours.keys() == g_ref.keys()
    for k in g_ref:
        torch.testing.assert_close(g_ours[k], g_ref[k], rtol=1e-5, atol=1e-6, msg=k)
    with torch.no_grad():  # inference runs nn.GRU itself
        torch.testing.assert_close(enc(ids, lengths), ref, rtol=1e-5, atol=1e-6)
