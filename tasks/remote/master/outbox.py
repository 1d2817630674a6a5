"""
What the controller's scheduler (``tasks/remote/master/controller.py``) sends to peers that may
not be connected: after a controller restart, the results and errors of the tasks that
were in flight wait here for their clients, and the scheduler's fence requests for the
engines, until each peer's socket has reconnected.
"""

import collections

import zmq


def as_bytes(frame):
    """A ZeroMQ *frame* (a `zmq.Frame` when received with ``copy=False``) as bytes."""
    return frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame)


class Outbox:
    """
    What a router *stream* sends to peers that may not be connected (yet): each message
    goes at once where it can; else it is held, in order, with the peer's other held
    messages, and tried again every *retry* s, once per peer and round, until it goes or
    *window* s have passed since the peer's first held message (then the peer is taken for
    gone, and what it held is dropped, with a warning).
    """

    def __init__(self, stream, loop, log, window, retry):
        self.stream, self.loop, self.log = stream, loop, log
        self.window, self.retry = window, retry
        self.held = {}  # peer: (deadline, deque of frame lists)
        self.timer = None

    def send(self, frames):
        """Send *frames* (the first: the peer's routing id) now, or hold them for later."""
        frames = [as_bytes(frame) for frame in frames]
        peer = frames[0]
        if peer in self.held:  # behind what waits for it already
            self.held[peer][1].append(frames)
        elif not self._sent(frames):
            self.held[peer] = (self.loop.time() + self.window, collections.deque([frames]))
            if self.timer is None:
                self.timer = self.loop.call_later(self.retry, self._retry)

    def _sent(self, frames):
        socket = self.stream.socket
        socket.router_mandatory = 1  # a router drops what it cannot route, unless told to say so
        try:
            socket.send_multipart(frames)
            return True
        except zmq.ZMQError:
            return False
        finally:
            socket.router_mandatory = 0

    def _retry(self):
        self.timer = None
        now = self.loop.time()
        for peer, (deadline, queue) in list(self.held.items()):
            while queue and self._sent(queue[0]):
                queue.popleft()
            if not queue:
                del self.held[peer]
            elif now > deadline:
                del self.held[peer]
                self.log.warning(f"{peer!r} did not come back in {self.window:g} s:"
                                 f" {len(queue)} messages for it dropped")
        if self.held:
            self.timer = self.loop.call_later(self.retry, self._retry)
