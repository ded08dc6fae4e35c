"""Pure translations: source orders -> canonical; canonical -> target payloads. No I/O here."""
