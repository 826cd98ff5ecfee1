"""The latent prior: fitting (models/prior.py, training/prior.py, ``train_model.py prior``), the offline render
(``generate.py prior``), ``script.py`` on a run with a prior and the Pd / SuperCollider examples. The exported
methods themselves: tests/test_prior_export.py.

Run folders are presets with random (seeded) weights, written as training writes them (test_generation_cli's
``make_run``); the dataset is the tiny demo dataset.
"""
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from test_generation_cli import make_run  # noqa: E402  (one run-folder maker for the CLI tests)
from vschaos.cli.generate import main as generate_main
from vschaos.cli.train import compose_config
from vschaos.cli.train import main as train_main
from vschaos.models.prior import LatentPrior, iid_gaussian_nll
from vschaos.models.prior_module import PriorModule
from vschaos.training.lock import TrainingLock
from vschaos.training.prior import chunks, load_prior, prior_options, prior_path, split_files

DEMO_RATE = 22050
SMALL_PITCH = ["transform=demo", "model=small"]  # the pitch presets on the demo front end, to stay fast


# ----------------------------------------------------------------------------- the model and its fit
def slow_sines(n_files: int, frames: int, latent_dim: int, seed: int) -> list:
    """Latent sequences with strong temporal structure: slow sines of random phase and period, a little noise."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None]
    sequences = []
    for _ in range(n_files):
        period = 40.0 + 40.0 * torch.rand(1, latent_dim, generator=generator)
        phase = 2 * math.pi * torch.rand(1, latent_dim, generator=generator)
        noise = 0.02 * torch.randn(frames, latent_dim, generator=generator)
        sequences.append(torch.sin(2 * math.pi * t / period + phase) * 1.5 + 0.3 + noise)
    return sequences


def test_prior_beats_an_iid_gaussian_on_held_out_sequences():
    torch.manual_seed(0)
    sequences = [(z, torch.zeros(z.shape[0], 0, dtype=torch.long)) for z in slow_sines(10, 200, 3, seed=1)]
    train, held_out = split_files(sequences, 0.2, seed=0)
    assert (len(train), len(held_out)) == (8, 2)
    module = PriorModule(3, hidden=32, layers=1, lr=1e-2)
    module.prior.set_normalisation(torch.cat([z for z, _ in train]))
    batch = chunks(train, 64)
    optimiser = module.configure_optimizers()
    for _ in range(150):
        optimiser.zero_grad()
        loss = module._loss(batch)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        prior_nll = float(torch.cat([module.prior.nll(z[None])[0][0] for z, _ in held_out]).mean())
    iid = iid_gaussian_nll(torch.cat([z for z, _ in train]), torch.cat([z for z, _ in held_out]))
    # a sine's next value is nearly known from its past; i.i.d. frames only know the spread
    assert prior_nll < iid - 3.0, (prior_nll, iid)


def test_nll_is_in_raw_latent_units():
    """The normalisation's Jacobian is counted: scaling the latents by 10 adds log(10) per entry and frame."""
    torch.manual_seed(0)
    prior = LatentPrior(2, hidden=8)
    z = torch.randn(1, 20, 2)
    prior.set_normalisation(z[0])
    before = prior.nll(z)[0]
    prior.set_normalisation(10 * z[0])
    after = prior.nll(10 * z)[0]
    torch.testing.assert_close(after - before, torch.full_like(before, 2 * math.log(10.0)), rtol=0, atol=1e-4)


def test_chunks_pad_and_mask():
    z, labels, mask = chunks([(torch.ones(5, 2), torch.full((5, 1), 3)), (torch.ones(2, 2), torch.full((2, 1), 1))],
                             4)
    assert z.shape == (3, 4, 2) and labels.shape == (3, 4, 1)
    assert mask.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert float(z[1, 1:].abs().sum()) == 0.0
    assert labels[:, :, 0].tolist() == [[3, 3, 3, 3], [3, -1, -1, -1], [1, 1, -1, -1]]


def test_prior_options_are_checked_with_the_key_named():
    assert prior_options(["hidden=32", "prior.layers=2", "+max_epochs=3"]).hidden == 32
    with pytest.raises(Exception, match="unknown option 'hiden=3'"):
        prior_options(["hiden=3"])
    with pytest.raises(Exception, match="seq_len must be a positive integer"):
        prior_options(["seq_len=0"])


# ----------------------------------------------------------------------------- the commands
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vschaos.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("prior_data"), sample_rate=DEMO_RATE, minutes=0.1,
                             files_per_instrument=1)


@pytest.fixture(scope="module")
def run_with_prior(tmp_path_factory, dataset):
    run = make_run(tmp_path_factory.mktemp("prior_runs"), "demo", "demo", dataset_root=dataset)
    assert train_main(["prior", str(run), "max_epochs=2", "hidden=16"]) == 0
    return run


def test_train_model_prior_writes_a_tensors_only_prior(run_with_prior, capsys):
    path = prior_path(run_with_prior / "version_0")
    state = torch.load(path, weights_only=True)
    assert state["hyperparameters"]["hidden"] == 16
    assert math.isfinite(state["metrics"]["held_out_loss"]) and math.isfinite(state["metrics"]["iid_nll"])
    prior = load_prior(run_with_prior / "version_0")
    assert prior.latent_dim == int(state["hyperparameters"]["latent_dim"])
    assert not (run_with_prior / "version_0" / ".training.lock").exists()  # released


def test_a_second_prior_is_refused_in_one_line(run_with_prior, capsys):
    before = prior_path(run_with_prior / "version_0").read_bytes()
    assert train_main(["prior", str(run_with_prior), "max_epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has a prior already" in err and "delete" in err
    assert prior_path(run_with_prior / "version_0").read_bytes() == before


def test_prior_refused_while_the_version_is_being_trained(tmp_path, dataset, capsys):
    run = make_run(tmp_path, "demo", "demo", dataset_root=dataset)
    with TrainingLock(run / "version_0"):
        assert train_main(["prior", str(run), "max_epochs=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is being trained by" in err
    assert not prior_path(run / "version_0").exists()


def test_prior_arguments_are_one_line(tmp_path, capsys):
    assert train_main(["prior"]) == 2
    assert "prior needs a run folder" in capsys.readouterr().err
    assert train_main(["prior", str(tmp_path / "missing"), "max_epochs=1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_main(["prior", str(tmp_path), "widths=3"]) == 2
    assert "unknown option 'widths=3'" in capsys.readouterr().err


def test_broken_prior_file_is_one_line(tmp_path, dataset, capsys):
    run = make_run(tmp_path, "demo", "demo", dataset_root=dataset)
    path = prior_path(run / "version_0")
    path.parent.mkdir()
    path.write_bytes(b"not a prior")
    assert generate_main(["prior", str(run), "-s", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot load the prior {path}" in err


def test_generate_prior_writes_the_requested_length(run_with_prior, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate_main(["prior", str(run_with_prior), "-s", "1.5", "--seed", "3", "--temperature", "0.5",
                          "--sr", "16000", "--out", str(out)]) == 0
    data, rate = sf.read(str(out / "prior" / "prior_seed3_t0.5.wav"), dtype="float32")
    assert rate == 16000 and data.shape == (24000,)
    assert bool(abs(data).max() > 0) and bool(torch.isfinite(torch.from_numpy(data)).all())


def test_generate_prior_without_a_prior_says_how_to_fit_one(tmp_path, dataset, capsys):
    run = make_run(tmp_path, "demo", "demo", dataset_root=dataset)
    assert generate_main(["prior", str(run), "-s", "1", "--out", str(tmp_path / "out")]) == 2
    assert "has no prior: fit one first with train_model.py prior" in capsys.readouterr().err
    assert not (tmp_path / "out" / "prior").exists()


def test_script_exports_prior_and_generate_when_the_run_has_a_prior(run_with_prior, tmp_path, capsys):
    from vschaos.cli.script import main as script_main
    from vschaos.host import load_model as host_load

    out = tmp_path / "export"
    assert script_main([str(run_with_prior), "-o", str(out), "--buffers", "256", "2048"]) == 0
    assert "with the run's latent prior" in capsys.readouterr().out
    model = host_load(str(out / "demo.ts"))
    assert [m.name for m in model.description.methods] == ["forward", "encode", "decode", "prior", "generate"]
    a = model.call("generate", torch.ones(1, 1, 2048))
    model.reset_state()
    assert torch.equal(a, model.call("generate", torch.ones(1, 1, 2048)))
    # the export stays small: the prior adds its own weights only
    assert (out / "demo.ts").stat().st_size <= (run_with_prior / "version_0" / "checkpoints" / "last.ckpt"
                                                 ).stat().st_size + 2 ** 20


def test_pd_generate_patch_plays_generate_with_no_audio_input():
    """patches/pd_generate.pd parses as a Pd file (records end with ';', connections name existing objects), plays
    ``generate`` from a temperature slider, and feeds all demo latents of ``prior`` into ``decode``."""
    text = (Path(__file__).resolve().parents[1] / "patches" / "pd_generate.pd").read_text()
    records = [r.strip() for r in text.replace("\\;", "").split(";\n") if r.strip()]
    assert records[0].startswith("#N canvas")
    objects = [r.split() for r in records[1:] if r.split()[1] != "connect"]
    connects = [[int(v) for v in r.split()[2:6]] for r in records[1:] if r.split()[1] == "connect"]
    nn = {i: tokens[5:8] for i, tokens in enumerate(objects) if tokens[1] == "obj" and tokens[4] == "nn~"}
    assert sorted(m for _, m, _ in nn.values()) == ["decode", "generate", "prior"]
    for source, _, sink, _ in connects:
        assert 0 <= source < len(objects) and 0 <= sink < len(objects)
    by_method = {m: i for i, (_, m, _) in nn.items()}
    feeding_generate = [objects[s] for s, _, k, _ in connects if k == by_method["generate"]]
    assert not any(tokens[4] in ("adc~", "tabplay~", "readsf~") for tokens in feeding_generate if len(tokens) > 4)
    assert any(tokens[4] == "sig~" for tokens in feeding_generate)
    latent_dim = int(compose_config("demo", []).model.latent_dim)
    assert {(o, i) for s, o, k, i in connects if s == by_method["prior"] and k == by_method["decode"]} == \
        {(n, n) for n in range(latent_dim)}


def test_supercollider_example_plays_generate_from_a_temperature_only():
    text = (Path(__file__).resolve().parents[1] / "patches" / "generate.scd").read_text()
    assert "NN(\\demo, \\generate).ar(K2A.ar(temperature), 2048" in text
    assert "SoundIn" not in text and "PlayBuf" not in text  # no audio input anywhere
    assert text.count("(") == text.count(")") and text.count("{") == text.count("}")


def test_a_moved_dataset_is_one_line_and_dataset_root_finds_it(tmp_path, dataset, capsys):
    run = make_run(tmp_path, "demo", "demo", dataset_root=tmp_path / "moved_away")
    assert train_main(["prior", str(run), "max_epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "moved since training?" in err and "dataset_root=PATH" in err
    assert train_main(["prior", str(run), "dataset_root=/no/such/folder"]) == 2
    assert "dataset_root=/no/such/folder: no such folder" in capsys.readouterr().err
    assert train_main(["prior", str(run), "max_epochs=1", "hidden=8", f"dataset_root={dataset}"]) == 0
    assert prior_path(run / "version_0").exists()


def test_a_full_disk_while_fitting_is_one_line(tmp_path, dataset, capsys, monkeypatch):
    import errno

    import vschaos.training.prior as training_prior

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(training_prior, "atomic_torch_save", full)
    run = make_run(tmp_path, "demo", "demo", dataset_root=dataset)
    assert train_main(["prior", str(run), "max_epochs=1", "hidden=8"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write the prior" in err and "no prior was written" in err
    assert not (run / "version_0" / ".training.lock").exists()


def test_a_non_finite_loss_stops_the_fit_with_the_training_error():
    from vschaos.models.lightning import NonFiniteTrainingError

    module = PriorModule(2, hidden=4)
    batch = (torch.full((1, 3, 2), float("nan")), torch.full((1, 3, 0), -1), torch.ones(1, 3))
    with pytest.raises(NonFiniteTrainingError, match="the prior's loss is NaN/Inf"):
        module.training_step(batch, 0)


def test_the_prior_learns_label_sequences():
    """Labels constant within a file, changing between files: after the first frame the class is known."""
    torch.manual_seed(0)
    sequences = []
    for i in range(8):
        z = slow_sines(1, 60, 2, seed=i)[0]
        sequences.append((z, torch.full((60, 1), i % 4, dtype=torch.long)))
    module = PriorModule(2, hidden=16, lr=1e-2, label_dims=[4])
    module.prior.set_normalisation(torch.cat([z for z, _ in sequences]))
    batch = chunks(sequences[:6], 60)
    optimiser = module.configure_optimizers()
    for _ in range(150):
        optimiser.zero_grad()
        module._loss(batch).backward()
        optimiser.step()
    with torch.no_grad():
        _, label_nll = module.prior.nll(*[torch.stack(t) for t in zip(*sequences[6:])])
        unknown = module.prior.nll(sequences[6][0][None], torch.full((1, 60, 1), -1))[1]
    assert float(label_nll[:, 1:].mean()) < 0.1 * math.log(4)  # far below a uniform guess
    assert float(unknown.abs().max()) == 0.0  # unknown labels cost nothing



def test_train_model_prior_models_a_conditioned_run_s_labels(tmp_path, dataset):
    run = make_run(tmp_path, "dgt_pitch_cond", "pitch", overrides=SMALL_PITCH, dataset_root=dataset)
    assert train_main(["prior", str(run), "max_epochs=1", "hidden=8"]) == 0
    prior = load_prior(run / "version_0")
    assert prior.label_dims == [12, 11]  # pitch classes, octaves: the decoder tasks in config order
    out = tmp_path / "out"
    assert generate_main(["prior", str(run), "-s", "0.5", "--out", str(out)]) == 0
    assert sf.info(str(out / "prior" / "prior_seed0_t1.wav")).frames == DEMO_RATE // 2


@pytest.mark.parametrize("layers", [1, 2])
def test_sampling_steps_the_same_network_that_training_fits(layers):
    """At temperature 0 a sample is the predicted mean: teacher forcing on the sampled path predicts it again
    (sampling steps one layer with torch.gru_cell on the GRU's own weights, several with the GRU)."""
    from vschaos.models.prior import sample_latents

    torch.manual_seed(layers)
    prior = LatentPrior(3, hidden=8, layers=layers).eval()
    prior.set_normalisation(torch.randn(50, 3))
    z, _ = sample_latents(prior, 20, temperature=0.0, seed=0)
    with torch.no_grad():
        u = prior.normalise(z)
        out, _ = prior.gru(torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1))
        mean = prior._split(out)[0][..., 0, :]  # the one component's mean
    assert float(u.abs().max()) < 8.0  # not held at the limit
    torch.testing.assert_close(mean, u, rtol=0, atol=1e-5)


def test_a_mixture_prior_samples_its_most_likely_component_and_scores_the_mixture():
    """Temperature 0 draws the most likely component's mean (teacher forcing on the path predicts it again); the
    NLL is -log sum_k w_k N(z; m_k, s_k) in raw units, checked against the formula; the export streams it."""
    from vschaos.models.prior import sample_latents

    torch.manual_seed(5)
    prior = LatentPrior(3, hidden=8, components=3).eval()
    prior.set_normalisation(torch.randn(50, 3) * 2.0)
    assert prior.hyperparameters()["components"] == 3 and prior.uniform_channels == 3
    z, _ = sample_latents(prior, 12, temperature=0.0, seed=0)
    with torch.no_grad():
        u = prior.normalise(z)
        out, _ = prior.gru(torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1))
        mean, log_std, _, mix = prior._split(out)
        picked = mix.argmax(dim=-1)  # (1, T)
        torch.testing.assert_close(mean[0, torch.arange(12), picked[0]], u[0], rtol=0, atol=1e-5)
        nll, _ = prior.nll(z)
        normal = torch.distributions.Normal(mean, log_std.exp())
        by_formula = -torch.logsumexp(torch.log_softmax(mix, -1) + normal.log_prob(u.unsqueeze(-2)).sum(-1), -1) \
            + prior.z_std.log().sum()
    torch.testing.assert_close(nll, by_formula, rtol=1e-5, atol=1e-5)
    hot = [sample_latents(prior, 12, temperature=1.0, seed=s)[0] for s in (1, 1, 2)]
    assert torch.equal(hot[0], hot[1]) and not torch.equal(hot[0], hot[2])


def test_a_mixture_prior_fits_a_two_way_choice_better_than_one_gaussian():
    """Frames that either stay at +1 or jump to -1 (a note held or another starting): one Gaussian must spread
    over both, a mixture of two puts its weight on each; held-out NLL per frame tells them apart."""
    from vschaos.models.prior_module import PriorModule

    generator = torch.Generator().manual_seed(0)
    choice = torch.where(torch.rand(64, 32, 1, generator=generator) < 0.5, 1.0, -1.0)
    z = torch.cat([choice, 0.1 * torch.randn(64, 32, 1, generator=generator)], dim=-1)
    z = z + 0.02 * torch.randn(z.shape, generator=generator)
    labels = torch.full(z.shape[:2] + (0,), -1, dtype=torch.long)
    mask = torch.ones(z.shape[:2], dtype=torch.bool)
    held = {}
    for components in (1, 2):
        torch.manual_seed(1)
        module = PriorModule(2, hidden=16, components=components, lr=1e-2)
        module.prior.set_normalisation(z[:48].reshape(-1, 2))
        optimiser = module.configure_optimizers()
        for _ in range(150):
            optimiser.zero_grad()
            loss = module._loss((z[:48], labels[:48], mask[:48]))
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            held[components] = float(module.prior.nll(z[48:])[0].mean())
    assert held[2] < held[1] - 0.5, held


def test_a_prior_file_whose_sizes_lie_is_refused_before_building(tmp_path):
    from vschaos.training.run import RunFolderError

    prior = LatentPrior(4, hidden=8)
    version = tmp_path / "version_0"
    prior_path(version).parent.mkdir(parents=True)
    torch.save({"state_dict": prior.state_dict(), "metrics": {},
                "hyperparameters": {**prior.hyperparameters(), "hidden": 10 ** 9}}, prior_path(version))
    with pytest.raises(RunFolderError, match="do not describe its weights"):
        load_prior(version)
    torch.save({"state_dict": prior.state_dict(), "metrics": {},
                "hyperparameters": {**prior.hyperparameters(), "label_dims": [10 ** 9]}}, prior_path(version))
    with pytest.raises(RunFolderError, match="do not describe its weights"):
        load_prior(version)
    for components in (10 ** 9, 3):  # absurd, or a mixture the weights are not: refused before building
        torch.save({"state_dict": prior.state_dict(), "metrics": {},
                    "hyperparameters": {**prior.hyperparameters(), "components": components}}, prior_path(version))
        with pytest.raises(RunFolderError, match="do not describe its weights"):
            load_prior(version)
    torch.save({"state_dict": prior.state_dict(), "metrics": {}, "hyperparameters": prior.hyperparameters()},
               prior_path(version))
    assert load_prior(version).hidden == 8
    older = {k: v for k, v in prior.hyperparameters().items() if k != "components"}  # written before mixtures
    torch.save({"state_dict": prior.state_dict(), "metrics": {}, "hyperparameters": older}, prior_path(version))
    assert load_prior(version).components == 1
    mixture = LatentPrior(4, hidden=8, components=3)
    torch.save({"state_dict": mixture.state_dict(), "metrics": {}, "hyperparameters": mixture.hyperparameters()},
               prior_path(version))
    assert load_prior(version).components == 3


def test_ctrl_c_while_fitting_is_one_line_and_restores_the_handler(tmp_path, dataset, capsys, monkeypatch):
    import signal

    from vschaos.models import prior_module

    def interrupted(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(prior_module.PriorModule, "training_step", interrupted)
    run = make_run(tmp_path, "demo", "demo", dataset_root=dataset)
    handler = signal.getsignal(signal.SIGINT)
    assert train_main(["prior", str(run), "max_epochs=1", "hidden=8"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "train_model.py: interrupted (Ctrl-C): no prior was written"
    assert signal.getsignal(signal.SIGINT) is handler
    assert not (run / "version_0" / ".training.lock").exists()


def test_an_export_of_another_checkpoint_than_the_prior_s_says_so(run_with_prior, tmp_path, capsys):
    """The prior records the checkpoint whose latents it models; exporting or generating from another one (or
    from the same file after training went on) prints a note naming both, and the matching one prints none."""
    import shutil

    from vschaos.cli.generate import main as generate_main
    from vschaos.cli.script import main as script_main
    from vschaos.training.prior import stale_prior_note

    version = run_with_prior / "version_0"
    state = torch.load(prior_path(version), weights_only=True)
    assert state["fitted_to"]["checkpoint"] == "last.ckpt" and len(state["fitted_to"]["sha256"]) == 64
    assert stale_prior_note(version, version / "checkpoints" / "last.ckpt") is None
    other = version / "checkpoints" / "other.ckpt"
    checkpoint = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["epoch"] = int(checkpoint.get("epoch", 0)) + 1  # the same weights saved again: other bytes
    torch.save(checkpoint, other)
    try:
        note = stale_prior_note(version, other)
        assert note.startswith("note: the prior was fitted to the latents of checkpoints/last.ckpt")
        assert "this uses other.ckpt" in note and str(prior_path(version).parent) in note
        capsys.readouterr()
        assert script_main([str(run_with_prior), "--checkpoint", "other.ckpt", "-o", str(tmp_path / "e"),
                            "--buffers", "2048"]) == 0
        assert note in capsys.readouterr().out
        assert generate_main(["prior", str(run_with_prior), "--checkpoint", "other.ckpt", "-s", "0.5",
                              "--out", str(tmp_path / "g")]) == 0
        assert note in capsys.readouterr().out
    finally:
        other.unlink()


def test_joined_files_chain_every_training_file_in_seeded_orders():
    """Each joined sequence holds every file once, end to end (frames and labels together), in an order drawn
    from the seed: the prior sees what follows a file's ending."""
    from vschaos.training.prior import joined_files

    files = [(torch.full((n, 2), float(i)), torch.full((n, 1), i, dtype=torch.long)) for i, n in enumerate((3, 5, 2))]
    joined = joined_files(files, orders=3, seed=7)
    assert len(joined) == 3
    for z, labels in joined:
        assert z.shape == (10, 2) and labels.shape == (10, 1)
        assert torch.equal(z[:, 0].long(), labels[:, 0])  # frames and labels moved together
        runs = torch.unique_consecutive(labels[:, 0], return_counts=True)
        assert sorted(zip(runs[0].tolist(), runs[1].tolist())) == [(0, 3), (1, 5), (2, 2)]
    assert [z[:, 0].tolist() for z, _ in joined] == [z[:, 0].tolist() for z, _ in joined_files(files, 3, 7)]
    assert joined_files(files, 0, 7) == []
    with pytest.raises(Exception, match="join_files must be an integer >= 0"):
        prior_options(["join_files=-1"])
