"""vmsched-pbs's IFL backends against the fake server: both backends, both servers.

What the adapter relies on: stats as plain dicts (resources as ``attr.resource``), every
status list freed exactly once, errors by name with the server's message whatever the
server's numbering, Torque's error messages freed and OpenPBS's not, connection failures
in each library's own way, and pbs_python loaded lazily with a sentence for every way it
fails to load.
"""

from __future__ import annotations

import sys

import pytest

from vmsched_pbs import errors
from vmsched_pbs.backend_cffi import LibraryError, open_library
from vmsched_pbs.backend_pbs_python import ModuleLoadError, PbsPythonBackend, load_module
from vmsched_pbs.backends import BackendError, open_backend
from vmsched_pbs.ifl import IFLError, Op

from .fake_pbs import BACKENDS, FakeServer, make_backend
from .fake_pbs.codes import CODES

KINDS = ("torque", "openpbs")


def server(kind):
    s = FakeServer(kind)
    s.add_queue("batch")
    s.add_node("wn1-slc-1", 4, 8192, properties=["host=wn1", "image=slc"], resources={"vmhost": "wn1"})
    return s


@pytest.fixture(params=[(k, b) for k in KINDS for b in BACKENDS], ids=lambda p: f"{p[0]}-{p[1]}")
def sb(request):
    kind, which = request.param
    s = server(kind)
    b = make_backend(s, which)
    b.connect(None)
    yield s, b
    b.disconnect()
    lib = getattr(b, "fake_lib", None) or getattr(b, "fake_shim", None)
    if lib is not None:
        assert lib.live == 0, "a status list was not given back to pbs_statfree"
    shim = getattr(b, "fake_shim", None)
    if shim is not None:
        assert not shim.errors, shim.errors


# ----------------------------------------------------------------------------- the error table

def test_error_names_agree_with_the_fake_servers_numbers():
    for name, (t, o, _, _) in CODES.items():
        if t is not None:
            assert errors.name_of(t, "torque") == name
            assert errors.code_of(name, "torque") == t
        if o is not None:
            assert errors.name_of(o, "openpbs") == name


def test_torque_numbers_its_client_errors_in_order_and_openpbs_does_not():
    # Torque's pbs_error_db.h numbers each line after the last; UNKNODE shows the shift
    assert errors.code_of("UNKNODE", "torque") == 15064 and errors.code_of("UNKNODE", "openpbs") == 15062
    assert errors.code_of("BADHOST", "torque") == 15010 and errors.code_of("BADHOST", "openpbs") == 15008
    assert errors.name_of(15008, "torque") == "IFF_NOT_FOUND"
    client = sorted(c for c in errors.TORQUE if c < 15200)
    # numbered in order, one gap only: the placeholder PBSE_GAP017
    assert [c for c in range(15001, client[-1] + 1) if c not in errors.TORQUE] == [15019]
    assert len(set(errors.TORQUE.values())) == len(errors.TORQUE)
    assert len(set(errors.OPENPBS.values())) == len(errors.OPENPBS)


def test_unknown_and_system_codes_are_named_not_guessed():
    assert errors.name_of(111, "torque") == "ECONNREFUSED"
    assert errors.name_of(15999, "openpbs") == "PBSE_15999"
    assert errors.name_of(0, "torque") == "NONE"


# ----------------------------------------------------------------------------- calls

def test_stats_are_plain_dicts_with_resources_dotted(sb):
    s, b = sb
    jid = s.submit(cores=2, memory="1gb")
    assert b.stat_server()[s.name]["scheduling"] == "True"
    assert b.stat_queues()["batch"]["queue_type"] == "Execution"
    node = b.stat_nodes()["wn1-slc-1"]
    assert node["state"] == "free"
    if s.kind == "openpbs":
        assert node["resources_available.vmhost"] == "wn1"
    else:
        assert node["properties"] == "host=wn1,image=slc" and "physmem=8388608kb" in node["status"]
    job = b.stat_jobs()[jid]
    assert job["Resource_List.walltime"] == "01:00:00" and job["job_state"] == "Q"


def test_every_change_request_reaches_the_server(sb):
    s, b = sb
    jid = s.submit(cores=2)
    b.alter_job(jid, {"comment": "Not Running: waiting"})
    b.run_job(jid, b.run_location("wn1-slc-1", 2, 0))
    assert s.jobs[jid]["job_state"] == "R" and s.jobs[jid]["comment"] == "Not Running: waiting"
    b.sig_job(jid, "suspend")
    assert s.jobs[jid]["job_state"] == "S"
    b.sig_job(jid, "resume")
    b.rerun_job(jid)
    assert s.jobs[jid]["job_state"] == "Q" and "exec_host" not in s.jobs[jid]
    s.add_queue("long")
    b.move_job(jid, "long")
    assert s.jobs[jid]["queue"] == "long"
    note = "note" if s.kind == "torque" else "comment"
    b.set_node("wn1-slc-1", [(note, "vmsched: occupied", Op.SET), ("state", "offline", Op.INCR)])
    assert s.nodes["wn1-slc-1"][note] == "vmsched: occupied" and "offline" in s.nodes["wn1-slc-1"]["state"]
    b.set_node("wn1-slc-1", [("state", "offline", Op.DECR)])
    assert s.nodes["wn1-slc-1"]["state"] == "free"


def test_a_job_runs_where_each_server_is_told_to(sb):
    s, b = sb
    jid = s.submit(cores=3, memory="2gb")
    loc = b.run_location("wn1-slc-1", 3, 2048)
    assert loc == ("(wn1-slc-1:ncpus=3:mem=2048mb)" if s.kind == "openpbs" else "wn1-slc-1:ppn=3")
    b.run_job(jid, loc)
    j = s.jobs[jid]
    assert j["exec_host"] == ("wn1-slc-1/0*3" if s.kind == "openpbs" else "wn1-slc-1/0-2")
    assert b.run_location("wn1-slc-1", 1, 0) == ("(wn1-slc-1:ncpus=1)" if s.kind == "openpbs" else "wn1-slc-1")


@pytest.mark.parametrize("call, name", [
    (lambda b, j: b.run_job("404.pbs01", "wn1-slc-1"), "UNKJOBID"),
    (lambda b, j: b.sig_job(j, "resume"), "BADSTATE"),
    (lambda b, j: b.sig_job(j, "SUSPEND-ME"), "UNKSIG"),
    (lambda b, j: b.move_job(j, "nowhere"), "UNKQUE"),
    (lambda b, j: b.set_node("wn9", [("state", "offline", Op.INCR)]), "UNKNODE"),
    (lambda b, j: b.alter_job(j, {"job_state": "R"}), "ATTRRO"),
])
def test_refusals_come_back_by_name_with_the_servers_message(sb, call, name):
    s, b = sb
    jid = s.submit()
    with pytest.raises(IFLError) as e:
        call(b, jid)
    assert e.value.name == name
    assert e.value.code == errors.code_of(name, s.kind)
    assert e.value.text and name in str(e.value)
    lib = getattr(b, "fake_lib", None)
    if lib is not None and s.kind == "torque":
        assert lib.freed >= 1 and not lib._msgs, "Torque's pbs_geterrmsg copy must be freed"


def test_the_wrong_attribute_for_a_domains_note_is_refused_by_each_server(sb):
    s, b = sb
    other = "comment" if s.kind == "torque" else "note"
    with pytest.raises(IFLError) as e:
        b.set_node("wn1-slc-1", [(other, "x", Op.SET)])
    assert e.value.name == "UNKNODEATR"


def test_a_refused_runjob_and_a_job_deleted_before_its_run(sb):
    s, b = sb
    jid = s.submit()
    s.refuse("runjob", jid, "MOMREJECT", "Execution server rejected request MSG=cannot create tmpdir")
    with pytest.raises(IFLError) as e:
        b.run_job(jid, b.run_location("wn1-slc-1", 1, 0))
    assert e.value.name == "MOMREJECT" and "tmpdir" in e.value.text
    s.before("runjob", lambda args: s.delete(jid))
    with pytest.raises(IFLError) as e:
        b.run_job(jid, b.run_location("wn1-slc-1", 1, 0))
    assert e.value.name == "UNKJOBID"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", BACKENDS)
def test_connection_refused_and_a_restarted_server(kind, which):
    s = server(kind)
    b = make_backend(s, which)
    s.up = False
    with pytest.raises(IFLError) as e:
        b.connect("pbs01")
    # Torque returns the errno negated (ECONNREFUSED); OpenPBS -1 with pbs_errno set
    assert e.value.name == ("ECONNREFUSED" if kind == "torque" else "SYSTEM")
    assert not b.connected
    s.up = True
    b.connect("pbs01")
    assert b.stat_nodes()
    s.restart()
    with pytest.raises(IFLError) as e:
        b.stat_jobs()
    assert e.value.name == "PROTOCOL"
    b.connect("pbs01")
    assert b.stat_nodes()


def test_not_connected_is_an_error_not_a_crash():
    b = make_backend(server("torque"), "cffi")
    with pytest.raises(IFLError, match="not connected"):
        b.stat_jobs()


def test_pbs_python_stat_calls_get_an_empty_list_not_none():
    s = server("torque")
    b = make_backend(s, "pbs_python")
    b.connect(None)
    with pytest.raises(TypeError):            # what pbs_python's typemap does with None
        b.pbs.pbs_statjob(b._conn, "", None, None)
    assert b.stat_jobs() == {}                # the backend passes []
    assert list(b.stat_nodes()) == ["wn1-slc-1"]
    assert len(b.pbs.statfreed) == 1, "pbs_statfree is called on what a stat returned, as PBSQuery does"


# ----------------------------------------------------------------------------- loading

def _fake_package(tmp_path, name, body):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(body)


@pytest.fixture
def clean_modules(monkeypatch):
    for name in ("pbs", "pbs_ifl"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield monkeypatch
    for name in ("pbs", "pbs_ifl"):
        sys.modules.pop(name, None)


def test_pbs_python_missing_is_said_plainly(clean_modules, tmp_path):
    clean_modules.setattr(sys, "path", [str(tmp_path)] + [p for p in sys.path if "site-packages" not in p])
    with pytest.raises(ModuleLoadError, match="pbs: not installed"):
        load_module("pbs")


@pytest.mark.parametrize("body, words", [
    ("raise ImportError('libtorque.so.2: cannot open shared object file: No such file or directory')",
     "libtorque.so.2: cannot open shared object file"),
    ("import imp_gone_in_3_12", "needs the module 'imp_gone_in_3_12'"),
    ("raise ImportError(\"dynamic module does not define module export function (PyInit__pbs)\")",
     "PyInit__pbs"),
    ("x = 1", "is not a PBS IFL module"),
])
def test_an_unloadable_pbs_python_is_explained_never_a_bare_import_error(clean_modules, tmp_path, body, words):
    _fake_package(tmp_path, "pbs", body)
    clean_modules.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleLoadError) as e:
        load_module("pbs")
    assert words in str(e.value)
    if "so.2" in body or "PyInit" in body:
        assert "build pbs_python from source" in str(e.value)


def test_a_loadable_module_gives_a_backend_of_its_kind(clean_modules, tmp_path):
    _fake_package(tmp_path, "pbs_ifl", "def pbs_connect(s): return -1\ndef get_pbs_errno(): return 15010\n")
    clean_modules.syspath_prepend(str(tmp_path))
    b = PbsPythonBackend.load("pbs_ifl")
    assert b.kind == "openpbs"


def test_no_library_at_all_names_what_was_tried(clean_modules, tmp_path):
    with pytest.raises(LibraryError) as e:
        open_library(str(tmp_path / "libtorque.so.2"))
    assert "libtorque.so.2" in str(e.value)
    clean_modules.setattr(sys, "path", [str(tmp_path)] + [p for p in sys.path if "site-packages" not in p])
    with pytest.raises(BackendError) as e:
        open_backend("auto", str(tmp_path / "libpbs.so"))
    assert "pbs_python backend" in str(e.value) and "cffi backend" in str(e.value)
