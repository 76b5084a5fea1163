"""The courier integration: booking pickups after commit, tracking by webhook and by
polling, and a simulator of the courier's API for tests and the demo.

`client` talks to the courier over HTTP (the only place the patient's street address
leaves the platform: the booking call), `booking` books a released shipment after its
commit, `tracking.apply_update` takes in every status update once (webhook or poll),
`webhook` is the HMAC-checked endpoint, `polling` the fallback job.
"""
