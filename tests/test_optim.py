"""avs's RMSprop is torch's, bit for bit, without the per-step allocation of the square root."""

import copy

import torch

from avs.train.optim import RMSprop


def _model():
    torch.manual_seed(0)
    return torch.nn.ModuleDict(
        {"a": torch.nn.Linear(30, 40), "b": torch.nn.Linear(40, 5), "unused": torch.nn.Linear(2, 2)}
    )


def _steps(model, opt, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 30, generator=gen)
        opt.zero_grad(set_to_none=True)
        model["b"](torch.tanh(model["a"](x))).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()


def test_same_parameters_and_state_as_torch():
    ours, theirs = _model(), _model()
    o1, o2 = RMSprop(ours.parameters(), lr=3e-3), torch.optim.RMSprop(theirs.parameters(), lr=3e-3)
    _steps(ours, o1, 7)
    _steps(theirs, o2, 7)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["param_groups"] == s2["param_groups"] and s1["state"].keys() == s2["state"].keys()
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["square_avg"], s2["state"][k]["square_avg"])
        assert torch.equal(s1["state"][k]["step"], s2["state"][k]["step"])
    assert ours["unused"].weight.grad is None and len(s1["state"]) == 4  # the unused layer got no state


def test_checkpoints_cross_over_and_learning_rates_apply():
    first = _model()
    o1 = torch.optim.RMSprop(first.parameters(), lr=1e-2)
    _steps(first, o1, 3)
    resumed = copy.deepcopy(first)
    o2 = RMSprop(resumed.parameters(), lr=1e-2)
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))  # as from a checkpoint written with torch's optimizer
    for model, opt in ((first, o1), (resumed, o2)):
        for group in opt.param_groups:  # what the recipe's schedulers do between epochs
            group["lr"] *= 0.5
        _steps(model, opt, 3, seed=2)
    for a, b in zip(first.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_other_settings_fall_back_to_torch():
    ours, theirs = _model(), _model()
    kw = {"lr": 1e-2, "momentum": 0.9, "centered": True, "weight_decay": 1e-4}
    _steps(ours, RMSprop(ours.parameters(), **kw), 4)
    _steps(theirs, torch.optim.RMSprop(theirs.parameters(), **kw), 4)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
