"""The shared intake server: routes of several intakes on one port, the common request helpers."""

import asyncio

import aiohttp
from aiohttp import web

from incident_operator.adapters.intake_server import (BodyTooLarge, bearer_token, error_response, read_body,
                                                      start_intake_server)
from incident_operator.config import OperatorConfig


def test_the_intake_port_defaults_to_the_alertmanager_receivers_port():
    assert OperatorConfig.from_dict({}).intake_port == 8082
    assert OperatorConfig.from_dict({"alertmanager": {"port": 9000}}).intake_port == 9000
    both = OperatorConfig.from_dict({"alertmanager": {"port": 9000}, "intake": {"port": 9100}})
    assert both.intake_port == 9100


def test_a_bad_intake_port_is_refused_at_load():
    import pytest

    from incident_operator.config import ConfigError
    for bad in (0, 70000, "8082", True):
        with pytest.raises(ConfigError, match="intake.port"):
            OperatorConfig.from_dict({"intake": {"port": bad}})
    with pytest.raises(ConfigError, match="intake"):
        OperatorConfig.from_dict({"intake": {"prot": 1}})


def test_every_installer_s_routes_are_served_on_one_port_with_the_common_helpers():
    async def scenario():
        async def echo(request: web.Request) -> web.Response:
            try:
                body = await read_body(request, 16)
            except BodyTooLarge as error:
                return error_response(413, str(error))
            return web.json_response({"token": bearer_token(request), "bytes": len(body)})

        async def ping(request: web.Request) -> web.Response:
            return web.json_response({"pong": True})

        runner = await start_intake_server([lambda app: app.router.add_post("/echo", echo),
                                            lambda app: app.router.add_get("/ping", ping)],
                                           port=0, host="127.0.0.1")
        try:
            port = runner.addresses[0][1]
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/ping") as response:
                    assert (response.status, await response.json()) == (200, {"pong": True})
                async with session.post(f"http://127.0.0.1:{port}/echo", data=b"12345",
                                        headers={"Authorization": "Bearer abc"}) as response:
                    assert await response.json() == {"token": "abc", "bytes": 5}
                async with session.post(f"http://127.0.0.1:{port}/echo", data=b"x" * 17,
                                        headers={"Authorization": "Basic abc"}) as response:
                    assert response.status == 413
                    assert (await response.json())["status"] == "error"

                async def chunks():
                    for _ in range(4):
                        yield b"xxxxxx"
                async with session.post(f"http://127.0.0.1:{port}/echo", data=chunks()) as response:
                    assert response.status == 413  # chunked: refused while it is read
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
