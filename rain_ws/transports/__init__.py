"""
The transports that carry Engine.IO sessions: each turns its protocol's
input into session input and carries the session's output.
"""
