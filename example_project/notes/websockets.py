"""
The notes channel, served as the Socket.IO namespace ``/notes/1.0/notes``.

The notes live in the user's Django session, not in a model: what a
listener saves is on the ``/notes/`` page at its next load, and a logout,
which ends the session, takes the notes with it.
"""

from typing import Any

import rain_ws

channel = "notes"
use_session = True            # socket.session is fresh before each event and saved after it
login_required = True         # anonymous users are refused at CONNECT ("login required")

#: The longest note, in characters.
MAX_NOTE = 1000


def checked_note(note: Any) -> str:
    if not isinstance(note, str) or not note.strip() or len(note) > MAX_NOTE:
        raise rain_ws.RainError(f"a note is a string of 1 to {MAX_NOTE} characters", "invalid")
    return note


async def handle(socket):
    await socket.emit("info", {"count": len(socket.session.get("notes", []))})

    @socket.on("list")
    async def list_notes():
        return {"notes": socket.session.get("notes", [])}

    @socket.on("save")
    async def save(note):
        notes = socket.session.get("notes", [])
        socket.session["notes"] = notes + [checked_note(note)]     # saved after this listener returns
        return {"count": len(notes) + 1}

    @socket.on("save-list")
    async def save_list(notes):
        # The whole list comes from the client: check it before it replaces
        # what the session holds.
        if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
            raise rain_ws.RainError("notes must be a list of strings", "invalid")
        socket.session["notes"] = notes
        return {"count": len(notes)}

    @socket.on("remove")
    async def remove(index):
        notes = socket.session.get("notes", [])
        # bool is an int to Python, not to the client: refuse true/false too.
        if type(index) is not int or not 0 <= index < len(notes):
            raise rain_ws.RainError("no note has this index", "invalid")
        socket.session["notes"] = notes[:index] + notes[index + 1 :]
        return {"count": len(notes) - 1}
