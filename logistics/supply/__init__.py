"""Investigational-product supply for direct-to-patient shipments.

`models` the depots, products and kits; `inventory` adds them (audited); `selection` picks
kits first-expiry-first-out and reserves them for a patient; `policy` keeps kits blinded:
only the unblinded supply role sees a kit's treatment arm.
"""
