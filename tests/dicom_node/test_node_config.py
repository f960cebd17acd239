"""The node's settings file: every problem is one line naming the file and the problem, exit 2,
nothing written; the rules route by BodyPartExamined / SeriesDescription."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from conftest import with_users

from autocontour.cli import main
from autocontour.dicom_node import load_node_config
from autocontour.dicom_node.config import Retry

GOOD = {"owner": "alice", "calling_ae_titles": ["CT_SIM"]}
DEST = {"ae_title": "TPS", "host": "127.0.0.1", "port": 104}

BAD_SETTINGS = [
    ({"calling_ae_titles": ["CT_SIM"]}, "owner: missing (required)"),
    ({"owner": "alice"}, "calling_ae_titles: missing (required)"),
    ({**GOOD, "calling_ae_titles": []}, "calling_ae_titles: List should have at least 1 item"),
    ({**GOOD, "calling_ae_titles": ["A_TITLE_FAR_TOO_LONG"]},
     "calling_ae_titles: AE title 'A_TITLE_FAR_TOO_LONG': 1-16 printable ASCII characters"),
    ({**GOOD, "ae_title": "BACK\\SLASH"}, "ae_title: AE title 'BACK\\\\SLASH': 1-16"),
    ({**GOOD, "destination": [DEST]}, "destination: unknown setting"),
    ({**GOOD, "port": 70000}, "port: Input should be less than or equal to 65535"),
    ({**GOOD, "quiet_seconds": 0}, "quiet_seconds: Input should be greater than 0"),
    ({**GOOD, "destinations": [{"ae_title": "TPS", "host": "x"}]},
     "destinations[0].port: missing (required)"),
    ({**GOOD, "destinations": [{**DEST, "port": "one-o-four"}]},
     "destinations[0].port: Input should be a valid integer"),
    ({**GOOD, "rules": [{"body_part": "HEAD(", "model": "head-neck"}]},
     "rules[0].body_part: bad regular expression 'HEAD(': missing ), unterminated subpattern"),
    ({**GOOD, "rules": [{"body_part": "HEAD", "model": "hed-neck"}]},
     ("rules[0].model: unknown model 'hed-neck'; did you mean 'head-neck'? (choices: head-neck, "
     "pelvis)")),
    ({**GOOD, "rules": [{"model": "runs/none.pt"}]}, ("rules[0].model: runs/none.pt: no such "
                                                     "model file")),
    ({**GOOD, "rules": [{"bodypart": "HEAD"}]}, "rules[0].bodypart: unknown setting"),
    ({**GOOD, "retry": {"attempts": 0}}, ("retry.attempts: Input should be greater than or "
                                         "equal to 1")),
    ({**GOOD, "tls": {"cert": "missing.pem", "key": "missing.key"}},
     "tls.cert missing.pem / tls.key missing.key: cannot load (No such file or directory)"),
    ({**GOOD, "tls": {"cert": "x.pem"}}, "tls.key: missing (required)"),
]


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("settings, message", BAD_SETTINGS,
                         ids=[m.split(":")[0] for _, m in BAD_SETTINGS])
def test_a_bad_settings_file_is_one_line_naming_file_and_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        settings: dict, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(yaml.safe_dump(settings))
    code, out, err = _run(capsys, ["dicom-node", "--config", "node.yaml", "--home", "home"])
    assert code == 2 and out == ""
    assert err.startswith("autocontour: error: node.yaml: ") and err.count("\n") == 1, err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.yaml"]  # nothing written


@pytest.mark.parametrize("text, message", [
    ("owner: [alice\n", "node.yaml: not valid YAML at line 2, column 1"),
    ("- alice\n", "node.yaml: must be a mapping of settings"),
    ("", "node.yaml: must be a mapping of settings"),
])
def test_a_settings_file_that_is_not_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch, text: str,
                                               message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "node.yaml").write_text(text)
    code, _, err = _run(capsys, ["dicom-node", "--config", "node.yaml", "--home", "home"])
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_flags_win_over_the_file_and_a_tls_flag_completes_its_section(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "port": 104, "ae_title": "FROM_FILE",
                                    "tls": {"cert": "a.pem", "key": "a.key"}}))
    with pytest.raises(Exception, match="tls.cert b.pem / tls.key a.key: cannot load"):
        load_node_config(path, tls_cert="b.pem")
    path.write_text(yaml.safe_dump({**GOOD, "port": 104, "ae_title": "FROM_FILE"}))
    config = load_node_config(path, port=11112, ae_title="FROM_FLAG", host=None)
    assert (config.port, config.ae_title, config.host) == (11112, "FROM_FLAG", "127.0.0.1")
    assert config.source == str(path) and not config.any_caller


def test_the_settings_default_to_dicom_node_yaml_in_the_home_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(capsys, ["dicom-node", "--home", str(tmp_path)])
    assert code == 2 and "the DICOM node needs its settings: --config FILE, or " \
        f"{tmp_path / 'dicom-node.yaml'}" in err
    (tmp_path / "dicom-node.yaml").write_text(yaml.safe_dump({**GOOD, "port": 70000}))
    code, _, err = _run(capsys, ["dicom-node", "--home", str(tmp_path)])
    assert code == 2 and f"{tmp_path / 'dicom-node.yaml'}: port: Input should be" in err


def test_the_first_matching_rule_chooses_the_model_and_destinations(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    other = {**DEST, "ae_title": "TPS2", "port": 105}
    path.write_text(yaml.safe_dump({**GOOD, "destinations": [DEST], "send_seg": False, "rules": [
        {"body_part": "^(HEAD|NECK|HEADNECK)$", "model": "head-neck"},
        {"series_description": "pelvis|prostate", "model": "pelvis", "destinations": [other],
         "send_seg": True},
        {"body_part": "CHEST", "series_description": "planning"},  # both must match
    ]}))
    config = load_node_config(path)
    model, where, seg, why = config.route("head", "")
    assert (model, [str(d) for d in where], seg) == ("head-neck", ["TPS@127.0.0.1:104"], False)
    assert why == "rule 1 (BodyPartExamined ~ '^(HEAD|NECK|HEADNECK)$')"
    model, where, seg, why = config.route("", "Prostate 2mm")
    assert (model, [str(d) for d in where], seg) == ("pelvis", ["TPS2@127.0.0.1:105"], True)
    assert config.route("CHEST", "planning CT")[3].startswith("rule 3")
    assert config.route("CHEST", "diagnostic")[:4] == (None, list(config.destinations), False,
                                                       "no rule matched")
    assert config.route("HEADS", "")[0] is None  # the patterns are regexes, anchored here


def test_retries_back_off() -> None:
    retry = Retry(attempts=5, first_delay_seconds=10, factor=2)
    assert [retry.delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]


def test_an_owner_who_is_not_a_user_and_a_port_in_use_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home = tmp_path / "home"
    with_users(home)
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "owner": "carol"}))
    code, _, err = _run(capsys, ["dicom-node", "--config", str(path), "--home", str(home)])
    assert code == 2 and err.count("\n") == 1, err
    assert f"node.yaml: owner 'carol' is not a user of the store at {home} (add one: " \
           "autocontour user add carol)" in err
    path.write_text(yaml.safe_dump(GOOD))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = _run(capsys, ["dicom-node", "--config", str(path), "--home", str(home),
                                     "--port", str(port)])
    assert code == 2 and err == (f"autocontour: error: cannot listen on 127.0.0.1:{port} "
                                 "(Address already in use)\n")


def test_status_of_a_store_without_series(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, ["dicom-node", "status", "--home", str(tmp_path / "h")])
    assert code == 0 and out.startswith("no DICOM series received yet")
