"""An asyncio loop on a background thread, so that synchronous code can call asyncua.

The deployment adapter's control loop is synchronous; asyncua is async. :class:`LoopThread`
runs one event loop on a daemon thread and runs coroutines on it with a deadline on each call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading


class Deadline(TimeoutError):
    """A synchronous call into the loop ran past its deadline."""


class LoopThread:
    """An asyncio loop on a daemon thread, called synchronously with a deadline."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="celltwin-opcua-client",
                                        daemon=True)
        self._thread.start()

    def run(self, coroutine, timeout_s: float):
        """Run ``coroutine`` on the loop and return its result.

        Raises:
            Deadline: it did not finish within ``timeout_s`` [s] (it is cancelled).
        """
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError since Python 3.11
            if future.done():
                raise  # the coroutine's own timeout: asyncua's deadline on one request
            future.cancel()
            raise Deadline from None

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join the thread. Idempotent."""
        if not self._thread.is_alive():
            return

        async def cancel_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(5.0)
        except BaseException:  # noqa: BLE001 - the loop stops below either way
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()
