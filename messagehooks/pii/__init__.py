"""Personal data in chat text: detection (on a normalized copy) and masking.

`mask_pii` is the text filter; messagehooks/pii/mask.py says how the detectors combine,
normalize.py what the copy undoes, emails.py and numbers.py what each detector finds.
"""

from messagehooks.pii.mask import CARD, EMAIL, IBAN, MASKS, PHONE, mask_pii

__all__ = ["CARD", "EMAIL", "IBAN", "MASKS", "PHONE", "mask_pii"]
