"""The event loop: time order, FIFO among equal times, lazy cancellation, run(until) and single steps."""

from gpufleet.simulation.loop import EventLoop


def test_events_run_in_time_then_fifo_order():
    loop, seen = EventLoop(), []
    for t, name in [(5, "c"), (1, "a"), (5, "d"), (1, "b"), (3, "x")]:
        loop.at(t, seen.append, name)
    loop.run()
    assert seen == ["a", "b", "x", "c", "d"]
    assert loop.now == 5 and loop.processed == 5


def test_cancelled_events_never_run():
    loop, seen = EventLoop(), []
    h = loop.at(2, seen.append, "cancelled")
    loop.at(3, seen.append, "kept")
    loop.cancel(h)
    loop.cancel(None)
    loop.run()
    assert seen == ["kept"] and loop.processed == 1


def test_run_until_stops_before_later_events_and_sets_the_clock():
    loop, seen = EventLoop(), []
    loop.at(1, seen.append, 1)
    loop.at(10, seen.append, 10)
    loop.run(until=5)
    assert seen == [1] and loop.now == 5
    loop.run()
    assert seen == [1, 10]


def test_step_drives_one_event_and_callbacks_may_schedule_more():
    loop, seen = EventLoop(), []

    def chain(n):
        seen.append((loop.now, n))
        if n < 3:
            loop.at(loop.now + 1, chain, n + 1)

    loop.at(0, chain, 0)
    assert loop.step() and seen == [(0, 0)]
    assert loop.peek() == 1
    while loop.step():
        pass
    assert seen == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert not loop.step()


def test_events_in_the_past_run_now():
    loop, seen = EventLoop(start=100), []
    loop.at(50, lambda _: seen.append(loop.now))
    loop.run()
    assert seen == [100]
