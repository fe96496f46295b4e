"""A data set and a method registered from outside the package, in a few lines each, appear wherever the project
lists data sets and methods: `mst-distill run --help`, a batch's dry run and the tables."""
from dataclasses import replace
import pytest
from mst_distill.registry import DATASET_REGISTRY, METHOD_REGISTRY, register_dataset, dataset_entry, register_method
from mst_distill.trainer import StudentOnly, RunConfig, run
from mst_distill.cli import main
from mst_distill.tables import write_tables


@pytest.fixture
def toy():
    "Register the toy data set (AV-MNIST-lite's files under another name and other modality names) and the toy method."
    register_dataset(replace(dataset_entry("avmnist-lite"), name="toy-digits", modalities=("pixels", "speech")))

    @register_method("toy-student", label="Toy student", teachers=("mm", "cm"))
    class ToyStudent(StudentOnly):
        "The plain student, registered as a method that accepts a teacher (and ignores it)."

    yield
    del DATASET_REGISTRY["toy-digits"], METHOD_REGISTRY["toy-student"]


def test_toy_registrations_appear_in_help_dry_run_and_tables(toy, lite_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "toy-digits" in help_text and "toy-student" in help_text

    manifest = tmp_path / "toy.yaml"
    manifest.write_text(f"datasets: [toy-digits]\nmethods: [student, toy-student]\nseeds: [0]\ntargets: [m1]\nprofile: smoke\n"
                        f"overrides:\n  toy-digits: {{data_root: {lite_root}}}\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "runs"), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "toy-digits/toy-student-mm-m1-seed0" in listed and "toy-digits/toy-student-cm-m1-seed0" in listed
    assert "toy-digits/student-m1-seed0" in listed and "3 to run" in listed

    runs = tmp_path / "runs" / "toy-digits"
    for method, teacher in (("student", "mm"), ("toy-student", "cm")):
        m = run(RunConfig(dataset="toy-digits", data_root=str(lite_root), method=method, teacher=teacher, profile="smoke",
                          out=str(runs / f"{method}-{teacher}"), progress=False, tensorboard=False))
        assert (m["status"], m["modalities"], m["metric"]) == ("completed", ["pixels", "speech"], "accuracy")
    table = write_tables(tmp_path / "runs", plots=False)["markdown"]["toy-digits-smoke"]
    lines = table.splitlines()
    assert lines[0] == "| | m1 = pixels |"
    assert [l.split(" | ")[0] for l in lines[2:]] == ["| w/o KD", "| Toy student (CM)"]
