"""When a paper dataset is not on disk: the error names where to get it and the exact folder it belongs in, the
CLI exits non-zero without a traceback, and ``robustft list datasets`` shows every paper dataset."""

from __future__ import annotations

import pytest
import yaml

from robustft.cli import main
from robustft.data import load
from robustft.data.where import PROVENANCE
from robustft.errors import MissingAssetError

# config name -> the folder under the data root its files go in
PAPER_DATASETS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "caltech256": "caltech256",
                  "cub200": "CUB_200_2011", "stanford-dogs": "stanford_dogs", "stanford-cars": "stanford_cars",
                  "fgvc-aircraft": "fgvc-aircraft-2013b", "imagenette": "imagenette2",
                  "domainnet:clipart": "domainnet"}


@pytest.fixture(autouse=True)
def _cache(private_data_cache, monkeypatch):
    monkeypatch.delenv("ROBUSTFT_DOMAINNET", raising=False)
    yield


def _key(name: str) -> str:
    return name.split(":")[0]


@pytest.mark.parametrize("name", sorted(PAPER_DATASETS))
def test_missing_dataset_says_where_to_get_it_and_where_to_put_it(name, tmp_path):
    with pytest.raises(MissingAssetError) as error:
        load(name, "test", image_size=8, root=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path / PAPER_DATASETS[name]) in message  # the exact directory
    assert PROVENANCE[_key(name)].url.split()[0] in message  # where to get it
    assert "ROBUSTFT_DATA" in message and "data.root" in message  # how to point robustft elsewhere
    assert "\n" not in message  # one paragraph


@pytest.mark.parametrize("name", ["cub200", "stanford-dogs", "domainnet:real", "caltech256"])
def test_without_root_the_data_root_is_robustft_data(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTFT_DATA", str(tmp_path / "shared"))
    with pytest.raises(MissingAssetError, match=str(tmp_path / "shared" / PAPER_DATASETS.get(name, "domainnet"))):
        load(name, "test", image_size=8)


def test_download_true_says_when_it_cannot_help(tmp_path):
    with pytest.raises(MissingAssetError, match="robustft cannot download it"):
        load("cub200", "test", image_size=8, root=str(tmp_path), download=True)
    # torchvision refuses StanfordCars' download (its host is gone) with a ValueError: still the same message
    with pytest.raises(MissingAssetError, match="Stanford Cars is not in .*issues/7545"):
        load("stanford-cars", "test", image_size=8, root=str(tmp_path), download=True)
    with pytest.raises(MissingAssetError, match="FGVC-Aircraft is not in .*fgvc-aircraft-2013b"):
        load("tv:FGVCAircraft", "test", image_size=8, root=str(tmp_path))  # the tv: spelling says it too


def test_cli_exits_2_with_the_message_and_leaves_no_run(tmp_path, capsys):
    config = tmp_path / "dogs.yaml"
    config.write_text(yaml.safe_dump({"name": "dogs", "output_dir": str(tmp_path / "runs"),
                                      "model": {"name": "tiny-cnn", "pretrained": False},
                                      "data": {"name": "stanford-dogs", "root": str(tmp_path / "data")}}))
    assert main(["train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("robustft: error: Stanford Dogs is not in") and "Traceback" not in err
    assert str(tmp_path / "data" / "stanford_dogs") in err and "vision.stanford.edu/aditya86/ImageNetDogs" in err
    assert not (tmp_path / "runs").exists()


def test_list_datasets_shows_every_paper_dataset_with_its_folder(capsys):
    assert main(["list", "datasets"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for name, folder in PAPER_DATASETS.items():
        row = rows["domainnet:<domain>" if name.startswith("domainnet") else name]
        assert f"<root>/{folder}" in row and PROVENANCE[_key(name)].title in row, row
