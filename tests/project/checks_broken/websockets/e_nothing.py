VALUE = 1  # rain_ws.E010: declares no handler
