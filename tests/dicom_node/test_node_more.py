"""The node's other promises: an instance is on disk before it is acknowledged, a node started
again takes back what it had received, TLS (dcmtk's echoscu and storescp over TLS, a caller
without a certificate refused), and the command itself (started, C-ECHO, SIGTERM)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from conftest import (
    DCMTK,
    DEST_AE,
    NODE_AE,
    SCANNER_AE,
    dcmtk_env,
    echo,
    free_port,
    listening,
    needs_dcmtk,
    node_config,
    phantom_series,
    with_users,
)

from autocontour.dicom_node import receiver
from autocontour.dicom_node.config import Tls
from autocontour.dicom_node.sender import Sender, SendError


def test_an_instance_is_written_and_fsynced_before_it_is_acknowledged(
        start_node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pynetdicom import AE

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(receiver.os, "fsync", lambda fd: (events.append("fsync"),
                                                          real_fsync(fd))[1])
    monkeypatch.setattr(receiver.os, "replace", lambda a, b: (events.append("rename"),
                                                              real_replace(a, b))[1])
    node = start_node(quiet_seconds=30)
    ct = phantom_series(tmp_path / "ct", 90061)
    first = min(ct.iterdir())
    dataset = pydicom.dcmread(first)
    ae = AE(ae_title=SCANNER_AE)
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", node.port, ae_title=NODE_AE)
    assert assoc.is_established
    try:
        events.clear()
        status = assoc.send_c_store(dataset)
        # the answer came: the file is there, complete, and was fsync'd then renamed, then
        # its folder fsync'd (the new folder's parent first)
        stored = node.home / "dicom" / "incoming" / dataset.SeriesInstanceUID / \
            f"{dataset.SOPInstanceUID}.dcm"
        assert status.Status == 0 and stored.is_file()
        assert events == ["fsync", "fsync", "rename", "fsync"]
        assert pydicom.dcmread(stored).PixelData == dataset.PixelData
        assert not list(stored.parent.glob(".*.part"))
    finally:
        assoc.release()


def test_uids_that_could_name_other_files_are_refused() -> None:
    assert receiver.is_uid("1.2.840.10008.5.1.4.1.1.2")
    for bad in ("../../etc", "1.2/3", "", "1..2", "1.2.", "a.b", "1" * 65, None):
        assert not receiver.is_uid(bad)


def test_a_node_started_again_takes_back_what_it_had_received(start_node,
                                                              tmp_path: Path) -> None:
    """Files of a series in ``dicom/incoming`` when the node starts (it stopped while they
    arrived) are a reception whose quiet time starts now."""
    home = tmp_path / "home"
    with_users(home)
    ct = phantom_series(tmp_path / "ct", 90062)
    uid = pydicom.dcmread(next(ct.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    shutil.copytree(ct, home / "dicom" / "incoming" / uid)
    (home / "dicom" / "incoming" / uid / ".half.dcm.123.part").write_bytes(b"half")
    node = start_node(home=home)
    row = node.wait_series(1, ("queued", "failed"), timeout=30)
    assert row.state == "queued", row.message
    assert row.instances == 40 and row.case_id is not None and row.job_id is not None


# --- TLS ---------------------------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a certificate it signed for 127.0.0.1 (node) and for a client (scanner)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) is not installed: no certificates for the TLS test")
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=autocontour test CA", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("node", "scanner"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf",
                 cwd=folder)
    return folder


@needs_dcmtk
def test_tls_callers_need_a_certificate_of_the_ca(start_node, pki: Path) -> None:
    node = start_node(tls={"cert": str(pki / "node.pem"), "key": str(pki / "node.key"),
                           "ca": str(pki / "ca.pem")})
    done = echo(node.port, SCANNER_AE, "+tls", str(pki / "scanner.key"),
                str(pki / "scanner.pem"), "+cf", str(pki / "ca.pem"))
    assert done.returncode == 0, done.stderr
    plain = echo(node.port)  # no TLS: nothing answers in DICOM
    assert plain.returncode != 0
    anonymous = echo(node.port, SCANNER_AE, "+tla", "+cf", str(pki / "ca.pem"))
    assert anonymous.returncode != 0  # TLS without a client certificate: refused


@needs_dcmtk
def test_sending_to_a_tls_destination(tmp_path: Path, pki: Path) -> None:
    from autocontour.dicom_node import load_node_config

    port = free_port()
    process = subprocess.Popen(
        [str(DCMTK["storescp"]), "-dhl", "+tls", str(pki / "scanner.key"),
         str(pki / "scanner.pem"), "+cf", str(pki / "ca.pem"), "-rc", "-aet", DEST_AE, "-od",
         str(tmp_path), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dcmtk_env())
    try:
        end = time.monotonic() + 10
        while not listening(port):
            assert time.monotonic() < end and process.poll() is None, "storescp did not start"
            time.sleep(0.05)
        ct = phantom_series(tmp_path / "ct", 90063)
        files = [(min(ct.iterdir()), "CT")]
        config = load_node_config(node_config(tmp_path, tls={
            "cert": str(pki / "node.pem"), "key": str(pki / "node.key"),
            "ca": str(pki / "ca.pem")}))
        sender = Sender(config, store=None, ae_title=NODE_AE)  # type: ignore[arg-type]
        assert sender.store_files(files, "127.0.0.1", port, DEST_AE, tls=True) == ["CT"]
        assert len(list(tmp_path.glob("CT.*"))) == 1
        untrusted = Sender(config.model_copy(update={"tls": Tls(
            cert=pki / "node.pem", key=pki / "node.key", ca=pki / "node.pem")}),
            store=None, ae_title=NODE_AE)  # type: ignore[arg-type]
        with pytest.raises(SendError, match="TLS"):  # its certificate is not of that "CA"
            untrusted.store_files(files, "127.0.0.1", port, DEST_AE, tls=True)
    finally:
        process.terminate()
        process.wait(10)


# --- the command ---------------------------------------------------------------------------

@needs_dcmtk
def test_the_command_listens_answers_c_echo_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with_users(home)
    port = free_port()
    config = node_config(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "autocontour.cli", "dicom-node", "--config", str(config),
         "--home", str(home), "--port", str(port), "--ae-title", NODE_AE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not listening(port):
            assert time.monotonic() < end and process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert echo(port).returncode == 0
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"DICOM node {NODE_AE} listening on 127.0.0.1:{port}" in err
    assert "accepts calling AE titles SCANNER" in err and "series become cases of alice" in err


def test_a_destination_is_named_in_words() -> None:
    from autocontour.dicom_node.config import Destination as Where

    assert str(Where(ae_title="TPS", host="10.0.0.5", port=104, tls=True)) == \
        "TPS@10.0.0.5:104 (TLS)"


def test_a_destination_that_takes_another_transfer_syntax_gets_the_file_converted(
        tmp_path: Path) -> None:
    """Files go as they are when the destination takes their transfer syntax (no decoding),
    else decoded and converted (implicit <-> explicit VR little endian)."""
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, evt

    from autocontour.dicom_node.config import NodeConfig

    ct = phantom_series(tmp_path / "ct", 90064)
    path = min(ct.iterdir())
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    other = ImplicitVRLittleEndian if syntax != ImplicitVRLittleEndian else \
        ExplicitVRLittleEndian
    got: list[str] = []

    def handle(event: object) -> int:
        got.append(event.context.transfer_syntax)  # type: ignore[attr-defined]
        return 0

    for accepted in (syntax, other):
        scp = AE(ae_title=DEST_AE)
        scp.add_supported_context(pydicom.dcmread(path).SOPClassUID, accepted)
        server = scp.start_server(("127.0.0.1", 0), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, handle)])
        try:
            sender = Sender(NodeConfig(owner="alice", calling_ae_titles=["X"]),
                            store=None, ae_title=NODE_AE)  # type: ignore[arg-type]
            assert sender.store_files([(path, "CT")], "127.0.0.1", server.server_address[1],
                                      DEST_AE, tls=False) == ["CT"]
        finally:
            server.shutdown()
    assert got == [syntax, other]
