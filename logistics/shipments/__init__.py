"""Direct-to-patient shipments: orders and their release, the courier, temperature,
receipt, returns and accountability."""
