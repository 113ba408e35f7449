"""A minimal asyncio HTTP/1.1 keep-alive client for load generators.

A general client such as httpx.AsyncClient spends so much CPU per request that the load
generator would take CPU from the servers it measures (figures in bench/RESULTS.md). This one
writes the request bytes and reads the status line, headers and body (Content-Length or
chunked), nothing more."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to a local server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> tuple[int, str, bytes, bool]:
        """Send one request's bytes; (status, head, body, keep_alive)."""
        self.writer.write(request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status, headers = _parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, head, body, headers.get("connection", "").lower() != "close"

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[Response, bool]:
        """One request (``body`` sent as JSON when given); (response, keep_alive)."""
        payload = b"" if body is None else json.dumps(body).encode()
        sent = {"Host": "127.0.0.1", "Content-Length": str(len(payload)), **headers}
        if body is not None:
            sent["Content-Type"] = "application/json"
        head = "".join(f"{k}: {v}\r\n" for k, v in sent.items())
        status, raw_head, data, keep = await self.send(
            f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + payload
        )
        return Response(status, _parse_head(raw_head)[1], data), keep

    def close(self) -> None:
        self.writer.close()


def _parse_head(head: str) -> tuple[int, dict[str, str]]:
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return status, headers


class Pool:
    """Up to ``size`` keep-alive connections; a caller waits when all are busy."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size, self.opened = port, size, 0
        self.idle: list[Connection] = []
        self.freed = asyncio.Condition()

    async def acquire(self) -> Connection:
        async with self.freed:
            await self.freed.wait_for(lambda: bool(self.idle) or self.opened < self.size)
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        try:
            return await Connection.open(self.port)
        except BaseException:
            await self.release(None, keep=False)
            raise

    async def release(self, conn: Connection | None, keep: bool) -> None:
        async with self.freed:
            if conn is not None and keep:
                self.idle.append(conn)
            else:
                if conn is not None:
                    conn.close()
                self.opened -= 1
            self.freed.notify()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
