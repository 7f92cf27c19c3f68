"""LangevinFlow pieces: encoder reads every bin once, log-variance KL, exact potential gradient,
the Langevin update, coordinated dropout, and exact resume from a checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neurodag.latents.model import (
    CoupledOscillatorPotential,
    GRUSequentialVAE,
    LangevinFlow,
    TrialEncoder,
    gaussian_kl,
)
from neurodag.latents.train import (
    TrainSettings,
    infer,
    kl_weight_at,
    learning_rate_factor,
    split_trials,
    train,
    training_loss,
)

torch.set_num_threads(1)


def test_encoder_reads_first_and_last_bin():
    torch.manual_seed(0)
    encoder = TrialEncoder(5, 8, 3, dropout=0.0).eval()
    spikes = torch.poisson(torch.full((2, 10, 5), 2.0))
    base = encoder(spikes)[0]
    for t in (0, 9):  # the reference model never reads the last bin
        changed = spikes.clone()
        changed[:, t] += 5
        assert not torch.allclose(encoder(changed)[0], base), f"bin {t} ignored"


def test_kl_takes_a_log_variance():
    mean = torch.tensor([[0.5, -1.0]])
    log_variance = torch.tensor([[math.log(4.0), math.log(0.25)]])
    # KL(N(m, s2) || N(0,1)) = (s2 + m^2 - 1 - log s2) / 2 per dim
    expected = 0.5 * ((4 + 0.25 - 1 - math.log(4)) + (0.25 + 1 - 1 - math.log(0.25)))
    assert gaussian_kl(mean, log_variance).item() == pytest.approx(expected)
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).item() == pytest.approx(0.0)


def test_potential_gradient_is_exact_and_coupling_is_a_circular_convolution():
    torch.manual_seed(1)
    potential = CoupledOscillatorPotential(channels=2, sites=6, hidden_channels=5).double()
    with torch.no_grad():
        potential.amplitude.normal_()
        potential.bias.normal_()
        potential.log_stiffness.normal_(0, 0.3)
    z = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(potential.energy(z).sum(), z)
    torch.testing.assert_close(potential.gradient(z), auto)
    conv = torch.nn.functional.conv1d(
        torch.nn.functional.pad(z.reshape(4, 2, 6), (1, 1), mode="circular"), potential.kernel
    )
    torch.testing.assert_close(z @ potential.coupling_matrix().T, conv.reshape(4, -1))


def test_langevin_update_follows_the_equations():
    torch.manual_seed(2)
    model = LangevinFlow(3, 4, n_time=3, latent_channels=1, latent_sites=4, temperature=0.0)
    z0, v0 = torch.randn(2, 4), torch.randn(2, 4)
    path, velocity = model.dynamics(z0, v0, sample=True)
    gamma = torch.sigmoid(model.damping_logit)
    dt = model.step
    z1 = z0 + dt * v0
    v1 = (1 - gamma) * (v0 - dt * model.potential.gradient(z1))
    z2 = z1 + dt * v1
    torch.testing.assert_close(path[:, 0], z0)
    torch.testing.assert_close(path[:, 1], z1)
    torch.testing.assert_close(path[:, 2], z2)
    torch.testing.assert_close(velocity[:, 1], v1)


def test_inferred_force_enters_the_velocity_update():
    """encoder_states="force": the encoder's per-bin state pushes the velocity,
    v <- (1 - gamma)(v - dt (grad U(z) - f_t)); bins without inputs get no force."""
    torch.manual_seed(5)
    model = LangevinFlow(
        3, 4, n_time=4, latent_channels=1, latent_sites=4, temperature=0.0, encoder_states="force"
    )
    z0, v0 = torch.randn(2, 4), torch.randn(2, 4)
    force = torch.randn(2, 2, 4)  # two held-in bins, then two bins without inputs
    path, velocity = model.dynamics(z0, v0, sample=False, force=force)
    gamma, dt, grad = torch.sigmoid(model.damping_logit), model.step, model.potential.gradient
    z1 = z0 + dt * v0
    v1 = (1 - gamma) * (v0 - dt * (grad(z1) - force[:, 1]))
    z2 = z1 + dt * v1
    v2 = (1 - gamma) * (v1 - dt * grad(z2))
    torch.testing.assert_close(velocity[:, 1], v1)
    torch.testing.assert_close(velocity[:, 2], v2)
    # the decoder reads only the Langevin phase space: every observation goes through it
    assert model.decoder.project.in_features == 2 * model.n_latent


def test_noise_enters_only_when_sampling():
    torch.manual_seed(3)
    model = LangevinFlow(3, 4, n_time=5, latent_channels=1, latent_sites=4, temperature=1.0)
    z0, v0 = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(model.dynamics(z0, v0, False), model.dynamics(z0, v0, False))
    assert not torch.allclose(model.dynamics(z0, v0, True)[0], model.dynamics(z0, v0, True)[0])


@pytest.mark.parametrize("which", ["forward", "both"])
def test_decoder_reads_the_encoder_state_of_each_bin(which):
    """The decoder sees the encoder's per-bin states (forward half: bins up to t); forward bins,
    which have no inputs, keep the last held-in bin's state."""
    torch.manual_seed(4)
    model = LangevinFlow(3, 4, n_time=6, encoder_hidden=5, encoder_states=which).eval()
    spikes = torch.poisson(torch.full((2, 4, 3), 2.0))
    _, _, states = model.encoder(spikes)
    seen = model.observation_states(states)
    assert seen.shape == (2, 6, 5 if which == "forward" else 10)
    torch.testing.assert_close(seen[:, :4, :5], states[:, :, :5])
    torch.testing.assert_close(seen[:, 4:], seen[:, 3:4].expand(-1, 2, -1))
    # a change at the last held-in bin leaves the forward state of earlier bins alone
    changed = spikes.clone()
    changed[:, 3] += 4
    moved = model.observation_states(model.encoder(changed)[2])
    torch.testing.assert_close(moved[:, :3, :5], seen[:, :3, :5])
    assert not torch.allclose(moved[:, 3:, :5], seen[:, 3:, :5])


def test_learning_rate_warms_up_then_decays():
    s = TrainSettings(steps=100, warmup_steps=10)
    factors = [learning_rate_factor(k, s) for k in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] < 1.0
    assert factors[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.09)))
    assert all(a > b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert learning_rate_factor(5, TrainSettings(steps=100)) > factors[5]


def _tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.0, size=(24, 12, 6))
    return split_trials(
        counts, heldout_fraction=0.34, forward_bins=3, valid_fraction=0.25, seed=seed
    )


def test_split_is_disjoint_and_complete():
    data = _tiny_data()
    assert sorted(np.concatenate([data.heldin, data.heldout])) == list(range(6))
    assert len(data.heldout) == 2 and data.n_heldin_time == 9
    assert not set(data.train) & set(data.valid)
    assert data.inputs(data.valid).shape == (6, 9, 4)


def test_coordinated_dropout_hides_what_it_scores():
    """With CD, the reconstruction term on held-in entries comes only from dropped inputs."""
    data = _tiny_data()

    class Spy(torch.nn.Module):
        def forward(self, inputs, sample=True):
            self.inputs = inputs
            b = inputs.shape[0]
            return torch.zeros(b, data.n_time, data.n_neurons), torch.zeros(b), None

    spy = Spy()
    torch.manual_seed(0)
    batch = torch.as_tensor(data.counts[data.train[:8]]) + 1  # every entry is nonzero
    loss, _, _ = training_loss(spy, data, batch, cd_rate=0.5, kl_scale=1.0)
    kept = spy.inputs != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(spy.inputs[kept], 2 * batch[:, :9][:, :, data.heldin][kept])
    # log rate 0: per-bin NLL = 1, so the loss counts masked entries: held-in dropped ones
    # (reweighted by 1/p) plus every held-out / forward entry.
    dropped = (~kept).float().sum() / 0.5
    other = 8 * data.n_time * data.n_neurons - 8 * 9 * len(data.heldin)
    assert loss.item() == pytest.approx((dropped.item() + other) / 8)


def test_kl_warmup_is_linear():
    s = TrainSettings(kl_weight=2.0, kl_warmup_steps=100)
    assert [kl_weight_at(k, s) for k in (0, 50, 100, 400)] == [0.0, 1.0, 2.0, 2.0]


@pytest.mark.parametrize("cls", [LangevinFlow, GRUSequentialVAE])
def test_interrupted_training_resumes_exactly(tmp_path, cls):
    data = _tiny_data()
    settings = TrainSettings(
        steps=6, batch_size=8, checkpoint_every=2, kl_warmup_steps=3, warmup_steps=2
    )

    small = {"latent_sites": 4, "potential_channels": 4, "decoder_width": 8}
    extra = small if cls is LangevinFlow else {}

    def fresh():
        torch.manual_seed(0)
        return cls(len(data.heldin), data.n_neurons, data.n_time, encoder_hidden=8, **extra)

    straight = fresh()
    train(straight, data, settings, checkpoint=tmp_path / "a.pt", run_id="x")
    first = fresh()
    half = TrainSettings(**{**settings.__dict__, "steps": 6})
    half.time_limit_s = 0.0  # stop after the first step, as if killed
    summary = train(first, data, half, checkpoint=tmp_path / "b.pt", run_id="x")
    assert summary["steps"] == 1
    resumed = fresh()
    summary = train(resumed, data, settings, checkpoint=tmp_path / "b.pt", run_id="x")
    assert summary["steps"] == 6 and summary["steps_this_run"] == 5
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    # A checkpoint from another run is not resumed.
    other = fresh()
    summary = train(other, data, settings, checkpoint=tmp_path / "b.pt", run_id="y")
    assert summary["steps_this_run"] == 6


def test_inference_is_deterministic_and_positive():
    data = _tiny_data()
    torch.manual_seed(0)
    model = LangevinFlow(len(data.heldin), data.n_neurons, data.n_time, encoder_hidden=8)
    rates, latent = infer(model, data, data.valid, posterior_samples=0, seed=0)
    again, _ = infer(model, data, data.valid, posterior_samples=0, seed=0)
    np.testing.assert_array_equal(rates, again)
    assert rates.shape == (6, 12, 6) and latent.shape == (6, 12, 16)
    assert (rates > 0).all()


def test_posterior_averaged_rates_are_seeded_and_average_the_draws():
    data = _tiny_data()
    torch.manual_seed(0)
    model = LangevinFlow(len(data.heldin), data.n_neurons, data.n_time, encoder_hidden=8)
    mean_path, latent = infer(model, data, data.valid, posterior_samples=0, seed=0)
    torch.manual_seed(5)
    global_before = torch.rand(1)
    torch.manual_seed(5)
    averaged, latent_k = infer(model, data, data.valid, posterior_samples=4, seed=1)
    assert torch.rand(1) == global_before  # the global RNG is untouched
    again, _ = infer(model, data, data.valid, posterior_samples=4, seed=1)
    np.testing.assert_array_equal(averaged, again)
    np.testing.assert_array_equal(latent_k, latent)  # latents stay the posterior-mean path
    assert not np.allclose(averaged, mean_path)
    # By hand: the mean of exp(log rates) over the same four seeded draws.
    x = torch.as_tensor(data.inputs(data.valid))
    torch.manual_seed(1)
    draws = [torch.exp(model(x, sample=True)[0]).detach().numpy() for _ in range(4)]
    np.testing.assert_allclose(averaged, np.mean(draws, axis=0), rtol=1e-5)
