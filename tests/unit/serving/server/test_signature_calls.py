"""How the server's event loop runs model calls: a lone call on the loop, concurrent calls side by side."""
import asyncio
import threading
import time

from serving.server import signature_calls

CALL_SECONDS = 0.05


def _slow_run(function, inputs):
    """Stands in for a model call: records where it ran and takes CALL_SECONDS, without the GIL."""
    function.append(threading.current_thread())
    time.sleep(CALL_SECONDS)
    return {"y": inputs["x"]}


def test_lone_call_runs_on_the_loop_and_concurrent_calls_overlap(monkeypatch):
    monkeypatch.setattr(signature_calls, "run", _slow_run)

    async def scenario():
        lone_threads, crowd_threads = [], []
        answer = await signature_calls.run_on_loop(lone_threads, {"x": 1})
        started = time.perf_counter()
        answers = await asyncio.gather(*(signature_calls.run_on_loop(crowd_threads, {"x": n}) for n in range(4)))
        return answer, lone_threads, answers, crowd_threads, time.perf_counter() - started

    answer, lone_threads, answers, crowd_threads, crowd_seconds = asyncio.run(scenario())
    assert answer == {"y": 1} and lone_threads == [threading.current_thread()]
    assert answers == [{"y": n} for n in range(4)]
    assert threading.current_thread() not in crowd_threads, "concurrent calls must leave the loop free"
    assert crowd_seconds < 3 * CALL_SECONDS, f"4 concurrent calls took {crowd_seconds:.3f} s: they did not overlap"
