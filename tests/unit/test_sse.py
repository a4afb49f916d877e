import asyncio
import json

from service.sse import DONE, KEEPALIVE, sse, with_keepalive


def test_framing():
    assert sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse({"a": "é"}, "delta") == 'event: delta\ndata: {"a":"é"}\n\n'.encode()
    assert json.loads(sse({"x": [1, 2]})[6:]) == {"x": [1, 2]}
    assert DONE == b"data: [DONE]\n\n"


async def test_keepalive_fills_gaps_and_relays_everything():
    async def slow():
        yield b"a"
        await asyncio.sleep(0.25)
        yield b"b"

    out = [x async for x in with_keepalive(slow(), 0.05)]
    assert out[0] == b"a" and out[-1] == b"b"
    assert 2 <= out.count(KEEPALIVE) <= 6


async def test_closing_the_relay_closes_the_source():
    closed = asyncio.Event()

    async def endless():
        try:
            while True:
                yield b"x"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    relay = with_keepalive(endless(), 1.0)
    assert await relay.__anext__() == b"x"
    await relay.aclose()
    assert closed.is_set()
