"""Creator interaction: a chat room per stream (messages, reactions, questions, gifts and
moderation), its store, and the service that runs the rooms. The WebSocket edge is the
origin's (`origin/chat_socket.py`); this package knows no sockets."""
