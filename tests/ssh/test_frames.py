"""The persistent shell's frames (``TOKEN START <pid>``, ``TOKEN END <rc>``) are cut out of the
stream whatever the step prints and however the stream is cut into chunks: the step's bytes come out
exactly, and only the shell's own frames count (no sshd: the parser itself)."""

from __future__ import annotations

import itertools

import pytest

from runbook.execute.transports.pshell import TOKEN_LENGTH, TOKEN_LETTERS, Frames, new_token


def parse(token: str, chunks: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """What the sink received and the frames found, feeding ``chunks`` one by one."""
    got = bytearray()
    frames = Frames(token)
    frames.sink = got.extend
    found: list[list[bytes]] = []
    for chunk in chunks:
        found += frames.feed(chunk)
    return bytes(got), found


def cuts(data: bytes, at: list[int]) -> list[bytes]:
    edges = [0, *at, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_a_token_is_64_random_letters_after_its_prefix():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert token.startswith("RBK") and len(token) == 3 + TOKEN_LENGTH
        assert set(token[3:]) <= set(TOKEN_LETTERS)


def test_the_step_bytes_come_out_exactly_around_its_frames_at_every_cut():
    token = new_token()
    t = token.encode()
    before, after = b"first part\n" + t[:-1] + b" not a frame\n", b"RBK" + t[3:40] + b"\nlast"
    stream = before + t + b" START 4242\n" + after + t + b" END 7\n"
    for at in range(1, len(stream)):
        out, found = parse(token, cuts(stream, [at]))
        assert out == before + after, at
        assert found == [[b"START", b"4242"], [b"END", b"7"]], at


def test_a_stream_fed_byte_by_byte_still_yields_its_frames():
    token = new_token()
    stream = b"x" * 100 + token.encode() + b" END 0\n"
    out, found = parse(token, [stream[i : i + 1] for i in range(len(stream))])
    assert (out, found) == (b"x" * 100, [[b"END", b"0"]])


@pytest.mark.parametrize("keep", [1, 3, 20, TOKEN_LENGTH + 2])
def test_output_ending_in_part_of_the_token_is_held_back_then_given_whole(keep):
    token = new_token()
    part = token.encode()[:keep]  # (the whole token but its last letter at the largest keep)
    out, found = parse(token, [b"data " + part, b"and more"])
    assert (out, found) == (b"data " + part + b"and more", [])


def test_another_shells_token_is_only_output():
    token, other = new_token(), new_token()
    printed = other.encode() + b" END 0\n" + other.encode() + b" START 1\n"
    out, found = parse(token, cuts(printed, [5, len(printed) - 3]))
    assert (out, found) == (printed, [])


def test_frames_in_large_chunks_of_zeros_and_text():
    token = new_token()
    body = bytes(3_000_000) + ("Größe, Привет, x\n" * 50_000).encode()
    stream = (
        body[:1_000_000] + token.encode() + b" START 9\n" + body[1_000_000:] + token.encode() + b" END 0\n"
    )
    out, found = parse(token, cuts(stream, [2_097_152, 4_194_304]))
    assert out == body
    assert found == [[b"START", b"9"], [b"END", b"0"]]
