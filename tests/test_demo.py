"""The demo says what it is doing as each stage starts, before the slow parts."""

from migrate import demo


def test_demo_prints_each_stage_as_it_starts(tmp_path, capsys):
    results = demo.run(zoo_name="small_convnet", workdir=str(tmp_path / "demo"))
    assert results["passed"]
    stages = [line for line in capsys.readouterr().err.splitlines() if line.startswith("demo [")]
    assert [line.split("]: ", 1)[1].split(" ")[0] for line in stages] == [
        "building", "converting", "verifying", "converting", "verifying"]
    assert "keep=trainable" in stages[1] and "keep=model_state" in stages[3]
