"""tests/unit/test_esp.py again, with the fast path's ESP (``native.EspSA``, fp_esp.c on
libcrypto) in place of the reference's ``EspSA``: the known answers (draft-mcgrew-gcm-
test-01, RFC 7539, RFC 4868 / RFC 2202), round trips, padding, the window, every drop
reason and the key checks hold for both implementations without a second copy of them.

Every ``test_*`` of that module is collected here too; an autouse fixture swaps the
``EspSA`` its functions see (their module globals) for the C class. ``EspInbound`` (the
reference's demux by SPI) works on either SA class.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from l2tpv3.proto.esp import AEAD_GCM
from tests.unit import test_esp as reference

try:
    from l2tpv3.fast import native
except ImportError:  # pragma: no cover - the extension is required under CI
    native = None  # type: ignore[assignment]

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("L2TPV3_REQUIRE_EXTENSIONS") == "1"


@pytest.fixture(autouse=True)
def _c_esp(monkeypatch: pytest.MonkeyPatch) -> None:
    if native is None or not native.HAVE_ESP:
        if REQUIRED:
            pytest.fail("the fast path's ESP (libcrypto) is not built")
        pytest.skip("the fast path is not built with libcrypto")
    monkeypatch.setattr(reference, "EspSA", native.EspSA)


def test_the_swap_reaches_the_reference_tests() -> None:
    """Guards the mechanism: the reference module's functions now make C SAs."""
    cls = vars(reference)["EspSA"]
    assert cls is native.EspSA
    assert type(cls(1, AEAD_GCM, bytes(20))).__module__ == "l2tpv3.fast._fastpath"


_TESTS: dict[str, Callable[..., None]] = {
    name: fn for name, fn in vars(reference).items() if name.startswith("test_") and callable(fn)
}
globals().update(_TESTS)


def test_the_chooser_says_where_encrypted_tunnels_run() -> None:
    """The daemon logs Implementation.esp_fallback once at start when encrypted
    tunnels cannot stay on the compiled path: only when it was built without
    libcrypto (the engine threads run ESP otherwise)."""
    from l2tpv3.fast import native
    from l2tpv3.io.datapath import PYTHON, choose

    assert PYTHON.esp_fallback is None
    reason = choose("cython").esp_fallback
    if native.HAVE_ESP:
        assert reason is None
    else:
        assert reason is not None and "libcrypto" in reason
