"""The bit values of nft's flag types (ct state, ct status, tcp flags), as nft names them.

Shared by the reader of nft text (nft_syntax) and the decoder of nf_tables netlink
(collectors/nftables/datatypes): a leaf module, so the collectors' helper process
imports the table without the text parser.
"""

from __future__ import annotations

# Types nft compares as bit masks (a bare value or list is printed with op "in"), and
# their bits: nft lists several flags in bit order.
FLAG_BITS: dict[tuple[str, str], dict[str, int]] = {
    ("ct", "state"): {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64},
    ("tcp", "flags"): {
        "fin": 1,
        "syn": 2,
        "rst": 4,
        "psh": 8,
        "ack": 16,
        "urg": 32,
        "ecn": 64,
        "cwr": 128,
    },
    ("ct", "status"): {
        "expected": 1,
        "seen-reply": 2,
        "assured": 4,
        "confirmed": 8,
        "snat": 16,
        "dnat": 32,
        "dying": 512,
    },
}
