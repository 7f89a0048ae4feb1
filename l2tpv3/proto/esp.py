"""ESP (RFC 4303) in transport mode, sans I/O: one Security Association seals and opens.

The reference for fp_esp.c: same bytes, same counters, same drop reasons. Nothing here
touches a socket, a file or a clock. What the kernel's xfrm does is the yardstick
(net/ipv4/esp4.c, net/xfrm/xfrm_replay.c), so a Linux peer configured with ``ip xfrm
state`` opens what we seal and the other way round.

Packet (RFC 4303 §2)::

    SPI (4) | Sequence Number, low 32 bits (4) | IV (8 AEAD, 16 CBC)
    | ciphertext of: payload | padding 1, 2, 3... | Pad Length (1) | Next Header (1)
    | ICV (16, or 12 for hmac(sha1))

A drop is a counted reason, never an exception: :meth:`EspSA.open` returns a ``str``
(one of :data:`~l2tpv3.proto.counters.ESP_DROP_REASONS`) for anything it will not
deliver.

IVs. AEAD algorithms (GCM, ChaCha20-Poly1305) are broken outright when a nonce repeats
under one key: the nonce is salt | IV, the salt is fixed by the key, so the 8-byte IV
must never repeat under that key, including across restarts and crashes (RFC 4106
§3.1, RFC 7634 §2). The IV is a 64-bit counter here. The SA may only use IVs in a
range it was granted (:meth:`EspSA.grant_ivs`); the daemon grants ranges from a
reservation it has persisted to disk first (l2tpv3/io/ivstate.py, docs/security.md),
so after a crash it starts above anything that may have been used. CBC IVs must be
unpredictable (RFC 3602 §2.3): random, from the OS.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from l2tpv3.proto.counters import (
    ESP_AUTH_FAILED,
    ESP_BAD_NEXT_HEADER,
    ESP_BAD_PADDING,
    ESP_COUNTER_NAMES,
    ESP_DROP_REASONS,
    ESP_PLAINTEXT,
    ESP_REPLAYED,
    ESP_TOO_SHORT,
    ESP_UNKNOWN_SPI,
)

# Algorithm names exactly as `ip xfrm state` takes them.
AEAD_GCM: Final = "rfc4106(gcm(aes))"
AEAD_CHACHA: Final = "rfc7539esp(chacha20,poly1305)"
ENC_CBC: Final = "cbc(aes)"
AUTH_SHA256: Final = "hmac(sha256)"
AUTH_SHA1: Final = "hmac(sha1)"
AEAD_ALGS: Final = (AEAD_GCM, AEAD_CHACHA)
ENC_ALGS: Final = (ENC_CBC,)
AUTH_ALGS: Final = (AUTH_SHA256, AUTH_SHA1)

# Key lengths in bytes. AEAD keys carry the 4-byte salt at their end (RFC 4106 §8.1,
# RFC 7634 §2), as `ip xfrm` expects them.
AEAD_KEY_LENS: Final[dict[str, tuple[int, ...]]] = {AEAD_GCM: (20, 28, 36), AEAD_CHACHA: (36,)}
ENC_KEY_LENS: Final[dict[str, tuple[int, ...]]] = {ENC_CBC: (16, 24, 32)}
# RFC 4868 §2.1.1: the HMAC-SHA-256 key is 256 bits; RFC 2404 §3: HMAC-SHA-1 160 bits.
AUTH_KEY_LENS: Final[dict[str, tuple[int, ...]]] = {AUTH_SHA256: (32,), AUTH_SHA1: (20,)}
# ICV lengths: 128 bits for the AEADs, RFC 4868 HMAC-SHA-256-128, RFC 2404 HMAC-SHA-1-96.
ICV_LEN: Final[dict[str, int]] = {AEAD_GCM: 16, AEAD_CHACHA: 16, AUTH_SHA256: 16, AUTH_SHA1: 12}

ESP_HLEN: Final = 8
# The largest anti-replay window kept (the kernel's XFRMA_REPLAY_ESN_VAL allows more;
# 4096 packets is far beyond any reordering a pseudowire sees).
MAX_REPLAY_WINDOW: Final = 4096
# IP protocol numbers carried in Next Header.
NH_UDP: Final = 17
NH_L2TP: Final = 115

# ESP's trailer: Pad Length and Next Header (RFC 4303 §2.5-§2.6).
ESP_TRAILER: Final = 2
# ESP in UDP adds a UDP header before the SPI (RFC 3948 §2.1).
ESPINUDP_HLEN: Final = 8


@dataclass(frozen=True, slots=True)
class EspShape:
    """What ESP adds to a datagram, per transform: the sizes the MTU arithmetic needs.

    The one place the ESP overhead is computed (session MTU, ``mss_clamp auto``,
    ``peer-config``, ``explain --overhead`` all call :meth:`max_payload`), so that a
    full-size inner frame never makes an outer packet above the path MTU.
    """

    iv: int
    block: int  # payload + trailer are padded to a multiple of this (RFC 4303 §2.4)
    icv: int
    espinudp: bool = False

    @classmethod
    def of(cls, alg: str, auth: str | None = None, espinudp: bool = False) -> EspShape:
        """The shape of ``ip xfrm``'s ``aead ALG`` or ``enc ALG auth AUTH``."""
        if alg in AEAD_ALGS:
            # The kernel pads AEADs to ALIGN(crypto_aead_blocksize, 4) = 4 (esp_output).
            return cls(8, 4, ICV_LEN[alg], espinudp)
        if alg in ENC_ALGS and auth in AUTH_ALGS:
            return cls(16, 16, ICV_LEN[auth], espinudp)
        raise EspKeyError(f"unknown algorithm {alg}" + (f" with {auth}" if auth else ""))

    @property
    def fixed(self) -> int:
        """Bytes added whatever the payload: [UDP] + SPI + sequence + IV + trailer + ICV."""
        udp = ESPINUDP_HLEN if self.espinudp else 0
        return udp + ESP_HLEN + self.iv + ESP_TRAILER + self.icv

    @property
    def worst(self) -> int:
        """The most ESP ever adds to a payload: :attr:`fixed` plus ``block - 1`` padding."""
        return self.fixed + self.block - 1

    def padding(self, payload: int) -> int:
        """The pad bytes for a payload of ``payload`` bytes (no over-padding, as the
        kernel)."""
        return -(payload + ESP_TRAILER) % self.block

    def wire_len(self, payload: int) -> int:
        """What a ``payload``-byte IP payload becomes after ESP (IP header excluded)."""
        return payload + self.fixed + self.padding(payload)

    def max_payload(self, room: int) -> int:
        """The largest payload whose ESP packet fits in ``room`` bytes (the path MTU
        minus the outer IP header): ``room`` minus the fixed part, rounded down to whole
        blocks with the trailer inside them. May be negative if nothing fits."""
        avail = room - (self.fixed - ESP_TRAILER)
        return (avail // self.block) * self.block - ESP_TRAILER


_U32: Final = 0xFFFFFFFF
_U64: Final = 0xFFFFFFFFFFFFFFFF


class EspKeyError(ValueError):
    """A key that does not fit its algorithm. The message never holds key bytes."""


@dataclass(slots=True)
class EspCounters:
    """Per SA, as ``ip -s xfrm state`` counts: bytes are payload bytes (the transport
    header and what follows it), before padding and after decryption."""

    tx_packets: int = 0
    tx_bytes: int = 0
    tx_errors: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {n: getattr(self, n) for n in ESP_COUNTER_NAMES}


def key_lengths(alg: str) -> tuple[int, ...]:
    """The accepted key lengths of an algorithm (bytes), or () if it is unknown."""
    for table in (AEAD_KEY_LENS, ENC_KEY_LENS, AUTH_KEY_LENS):
        if alg in table:
            return table[alg]
    return ()


def genkey(alg: str) -> bytes:
    """A fresh random key for ``alg`` (the longest it takes; salt included for AEADs)."""
    lengths = key_lengths(alg)
    if not lengths:
        raise EspKeyError(f"unknown algorithm {alg}")
    return os.urandom(max(lengths))


class EspSA:
    """One direction of one SA (RFC 4303 §4): the keys, the sequence number, the window.

    ``alg`` is the AEAD or the encryption algorithm; ``auth`` and ``auth_key`` are for
    ``cbc(aes)`` only. The same object may seal and open (tests do), but the daemon
    makes one per direction, as ``ip xfrm state`` has one state per direction.
    """

    __slots__ = (
        "_aead",
        "_auth_key",
        "_cbc_key",
        "_digest",
        "_salt",
        "_window_bits",
        "alg",
        "auth",
        "block",
        "counters",
        "drops",
        "esn",
        "icv_len",
        "iv_counter",
        "iv_len",
        "iv_limit",
        "replay_window",
        "seq",
        "spi",
        "top",
    )

    def __init__(
        self,
        spi: int,
        alg: str,
        key: bytes,
        auth_key: bytes | None = None,
        auth: str | None = None,
        *,
        esn: bool = False,
        replay_window: int = 0,
    ) -> None:
        if not 0 <= spi <= _U32:
            raise EspKeyError("SPI must be 0..0xffffffff")
        if not 0 <= replay_window <= MAX_REPLAY_WINDOW:
            raise EspKeyError(f"replay_window must be 0..{MAX_REPLAY_WINDOW}")
        self.spi = spi
        self.alg = alg
        self.auth = auth
        self.esn = bool(esn)
        self.replay_window = replay_window
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._cbc_key = b""
        self._auth_key = b""
        self._digest = ""
        self._salt = b""
        if alg in AEAD_ALGS:
            if auth is not None or auth_key:
                raise EspKeyError(f"{alg} is an AEAD: no auth algorithm")
            if len(key) not in AEAD_KEY_LENS[alg]:
                raise EspKeyError(_len_error(alg, len(key)))
            # RFC 4106 §8.1 / RFC 7634 §2: the last 4 bytes of the keying material are
            # the salt, the implicit part of the nonce.
            body, self._salt = bytes(key[:-4]), bytes(key[-4:])
            self._aead = AESGCM(body) if alg == AEAD_GCM else ChaCha20Poly1305(body)
            self.iv_len, self.icv_len = 8, ICV_LEN[alg]
            # The kernel pads AEADs to ALIGN(crypto_aead_blocksize, 4) = 4 (esp_output).
            self.block = 4
        elif alg in ENC_ALGS:
            if auth not in AUTH_ALGS:
                raise EspKeyError(f"{alg} needs auth {' or '.join(AUTH_ALGS)}")
            if len(key) not in ENC_KEY_LENS[alg]:
                raise EspKeyError(_len_error(alg, len(key)))
            if auth_key is None or len(auth_key) not in AUTH_KEY_LENS[auth]:
                raise EspKeyError(_len_error(auth, 0 if auth_key is None else len(auth_key)))
            self._cbc_key = bytes(key)
            self._auth_key = bytes(auth_key)
            self._digest = "sha256" if auth == AUTH_SHA256 else "sha1"
            self.iv_len, self.icv_len, self.block = 16, ICV_LEN[auth], 16
        else:
            raise EspKeyError(f"unknown algorithm {alg}")
        self.seq = 0  # the last sequence number sent; the first packet carries 1
        self.iv_counter = 0  # the last AEAD IV used
        # The highest AEAD IV this SA may use; None = no limit (tests, one-shot use).
        self.iv_limit: int | None = None
        self.top = 0  # the highest sequence number received and authenticated
        self._window_bits = 0  # bit i: top - i was received
        self.counters = EspCounters()
        self.drops = dict.fromkeys(ESP_DROP_REASONS, 0)

    def __repr__(self) -> str:
        # No key material, ever (docs/security.md).
        return f"EspSA(spi=0x{self.spi:08x}, alg={self.alg!r}, auth={self.auth!r})"

    @property
    def aead(self) -> bool:
        return self._aead is not None

    @property
    def overhead(self) -> int:
        """The most ESP adds to a payload: header, IV, a block of padding, trailer, ICV."""
        return ESP_HLEN + self.iv_len + self.block - 1 + 2 + self.icv_len

    # -- IV ranges ---------------------------------------------------------------------

    def grant_ivs(self, first: int, last: int) -> None:
        """Allow the AEAD IVs first..last (from a reservation already on disk)."""
        if not 1 <= first <= last <= _U64:
            raise ValueError("bad IV range")
        self.iv_counter = first - 1
        self.iv_limit = last

    @property
    def ivs_left(self) -> int | None:
        """IVs left in the granted range (None: unlimited, or not an AEAD)."""
        if self._aead is None or self.iv_limit is None:
            return None
        return self.iv_limit - self.iv_counter

    # -- sending ------------------------------------------------------------------------

    def seal(self, payload: bytes, next_header: int, iv: bytes | None = None) -> bytes | None:
        """The ESP packet for ``payload``, or None when this SA cannot send.

        None (counted in ``tx_errors``) when the sequence numbers are used up (RFC 4303
        §3.3.3: they must not cycle; rekey with a new SA) or no AEAD IV is left in the
        granted range. ``iv`` forces the explicit IV (known-answer and differential
        tests); it is not counted against the range.
        """
        last = _U64 if self.esn else _U32
        if self.seq >= last or len(payload) > 65535:
            self.counters.tx_errors += 1
            return None
        if iv is not None and len(iv) != self.iv_len:
            raise ValueError(f"the IV is {self.iv_len} bytes")
        if iv is None:
            if self._aead is not None:
                if self.iv_limit is not None and self.iv_counter >= self.iv_limit:
                    self.counters.tx_errors += 1
                    return None
                if self.iv_counter >= _U64:
                    self.counters.tx_errors += 1
                    return None
                self.iv_counter += 1
                iv = self.iv_counter.to_bytes(8, "big")
            else:
                iv = os.urandom(16)
        seq = self.seq + 1
        header = struct.pack("!II", self.spi, seq & _U32)
        # RFC 4303 §2.4, as the kernel's esp_output_fill_trailer: pad to the block with
        # 1, 2, 3, ..., then Pad Length and Next Header; never more than needed.
        padlen = (-(len(payload) + 2)) % self.block
        plain = payload + bytes(range(1, padlen + 1)) + bytes((padlen, next_header & 0xFF))
        if self._aead is not None:
            sealed = self._aead.encrypt(self._salt + iv, plain, self._aad(header, seq))
            out = header + iv + sealed
        else:
            enc = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).encryptor()
            body = header + iv + enc.update(plain) + enc.finalize()
            out = body + self._icv(body, seq)
        self.seq = seq
        self.counters.tx_packets += 1
        self.counters.tx_bytes += len(payload)
        return out

    def _aad(self, header: bytes, seq: int) -> bytes:
        # RFC 4106 §5 / RFC 7634 §2.1: SPI | seq, or with ESN SPI | seq high | seq low.
        if self.esn:
            return header[:4] + struct.pack("!Q", seq)
        return header

    def _icv(self, signed: bytes, seq: int) -> bytes:
        # RFC 4303 §2.2.1/§3.3.2.1: with ESN the high 32 bits are authenticated as if
        # appended after the payload, and never sent (the kernel's authencesn).
        if self.esn:
            signed += struct.pack("!I", seq >> 32)
        return _hmac.digest(self._auth_key, signed, self._digest)[: self.icv_len]

    # -- receiving ---------------------------------------------------------------------

    def open(self, packet: bytes | bytearray | memoryview) -> tuple[bytes, int] | str:
        """(payload, Next Header), or the reason it is dropped (already counted).

        The SPI is not checked here: the demux chose this SA by it (:class:`EspInbound`).
        """
        data = bytes(packet)
        head = ESP_HLEN + self.iv_len
        if len(data) < head + self.icv_len + 2:
            return self.drop(ESP_TOO_SHORT)
        clen = len(data) - head - self.icv_len
        if self._aead is None and clen % self.block:
            return self.drop(ESP_TOO_SHORT)
        seq = self._infer_seq(struct.unpack_from("!I", data, 4)[0])
        # RFC 4303 §3.4.3: the window is checked before the ICV (cheap rejection of
        # replays) and moved only after the ICV verified.
        if self._replayed(seq):
            return self.drop(ESP_REPLAYED)
        iv = data[ESP_HLEN:head]
        if self._aead is not None:
            try:
                plain = self._aead.decrypt(
                    self._salt + iv, data[head:], self._aad(data[:ESP_HLEN], seq)
                )
            except InvalidTag:
                return self.drop(ESP_AUTH_FAILED)
        else:
            icv = data[head + clen :]
            if not _hmac.compare_digest(self._icv(data[: head + clen], seq), icv):
                return self.drop(ESP_AUTH_FAILED)
            dec = Cipher(algorithms.AES(self._cbc_key), modes.CBC(iv)).decryptor()
            plain = dec.update(data[head : head + clen]) + dec.finalize()
        padlen = plain[-2]
        # As the kernel's esp_remove_trailer: something must be left of the payload.
        if padlen + 2 >= len(plain):
            return self.drop(ESP_BAD_PADDING)
        body = len(plain) - 2 - padlen
        # RFC 4303 §2.4: the padding we expect is 1, 2, 3, ... (the kernel writes it).
        if plain[body : body + padlen] != bytes(range(1, padlen + 1)):
            return self.drop(ESP_BAD_PADDING)
        self._advance(seq)
        self.counters.rx_packets += 1
        self.counters.rx_bytes += body
        return plain[:body], plain[-1]

    def drop(self, reason: str) -> str:
        """Count a drop of this SA's traffic (also the callers': bad Next Header)."""
        self.drops[reason] += 1
        return reason

    def _infer_seq(self, low: int) -> int:
        """The full sequence number of a received low half (RFC 4303 Appendix A2.2).

        Without ESN the number is the low half. With ESN and no window, a window of
        one is assumed (a number below the top belongs to the next subspace).
        """
        if not self.esn:
            return low
        top_low, top_high = self.top & _U32, self.top >> 32
        w = self.replay_window or 1
        bottom = (top_low - w + 1) & _U32
        if top_low >= w - 1:
            # the window lies within one subspace
            if low < bottom:
                top_high += 1
        elif low >= bottom:
            # it spans two: a number above the bottom is from the previous subspace
            top_high -= 1
        return ((top_high & _U32) << 32) | low

    def _replayed(self, seq: int) -> bool:
        if not self.replay_window:
            return False
        if seq == 0 and not self.esn:
            return True  # the first packet sent carries 1 (§3.3.3)
        if seq > self.top:
            return False
        diff = self.top - seq
        return diff >= self.replay_window or bool(self._window_bits >> diff & 1)

    def _advance(self, seq: int) -> None:
        mask = (1 << self.replay_window) - 1
        if seq > self.top:
            self._window_bits = ((self._window_bits << (seq - self.top)) | 1) & mask
            self.top = seq
        else:
            self._window_bits |= (1 << (self.top - seq)) & mask


def _len_error(alg: str, got: int) -> str:
    want = " or ".join(str(n * 8) for n in key_lengths(alg))
    return f"{alg} needs a {want}-bit key, not {got * 8} bits"


def spi_of(packet: bytes | bytearray | memoryview) -> int | None:
    """The SPI of an ESP packet, or None if it is too short to hold a header."""
    if len(packet) < ESP_HLEN:
        return None
    return int.from_bytes(packet[:4], "big")


class EspInbound:
    """The inbound SAs of one tunnel, found by SPI (RFC 4303 §3.4.2), and the drops
    that belong to no SA: an unknown SPI, plaintext where ESP is required.

    ``foreign``: the inbound SPIs of the other tunnels that hear the same packets, and
    ``count_unknown``: whether this tunnel is the one of them that counts an unknown SPI
    (proto/espdemux.py decides both; the daemon sets them)."""

    __slots__ = ("count_unknown", "drops", "foreign", "sas")

    def __init__(self) -> None:
        self.sas: dict[int, EspSA] = {}
        self.drops = dict.fromkeys(ESP_DROP_REASONS, 0)
        self.foreign: frozenset[int] = frozenset()
        self.count_unknown = True

    def __bool__(self) -> bool:
        return bool(self.sas)

    def open(
        self, packet: bytes | bytearray | memoryview, next_header: int | None = None
    ) -> tuple[bytes, int] | str | None:
        """Demux by SPI and open. ``next_header``: the only Next Header this tunnel
        carries (17 over UDP, 115 over IP); anything else is ``bad_next_header``.
        None: another tunnel's packet (a foreign SPI, or one with an unknown SPI or too
        short for one, which that tunnel counts), ignored and not counted here."""
        spi = spi_of(packet)
        if spi is None:
            return self.drop(ESP_TOO_SHORT) if self.count_unknown else None
        sa = self.sas.get(spi)
        if sa is None:
            if spi in self.foreign or not self.count_unknown:
                return None
            return self.drop(ESP_UNKNOWN_SPI)
        out = sa.open(packet)
        if isinstance(out, str):
            return out
        if next_header is not None and out[1] != next_header:
            return sa.drop(ESP_BAD_NEXT_HEADER)
        return out

    def plaintext(self) -> str:
        """Count a datagram that arrived without ESP on a tunnel that requires it."""
        return self.drop(ESP_PLAINTEXT)

    def drop(self, reason: str) -> str:
        self.drops[reason] += 1
        return reason


# The signature of a granter: given an SA's key fingerprint, reserve a range of IVs
# durably and return (first, last). l2tpv3/io/ivstate.py implements it on disk.
IvGranter = Callable[[str], tuple[int, int]]


def key_fingerprint(alg: str, key: bytes) -> str:
    """A name for the (algorithm, key) pair that reveals nothing of the key: the IV
    reservation is kept per key, since the nonce space belongs to the key (and its
    salt), whichever SPI uses it. SHA-256 of a domain label, the algorithm and the key;
    with a random 128-bit or longer key it cannot be inverted."""
    digest = hashlib.sha256(b"l2tpv3 esp iv reservation\0" + alg.encode() + b"\0" + key)
    return digest.hexdigest()[:32]
