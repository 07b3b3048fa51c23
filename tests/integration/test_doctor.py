"""``hiker doctor`` against the real RabbitMQ, Redis, an in-process ingress and the Graph mock.

Each test breaks one thing an operator gets wrong and checks that the report names it, says how
to fix it, exits 1, and shows no secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aio_pika
import aiormq
import pytest

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.tools.doctor.checkup import DoctorOptions, diagnose
from hiker.tools.doctor.report import Finding, Status, exit_code
from hiker.tools.doctor.stack import ServiceEndpoint
from hiker.tools.simulate import encode, messages_change, post_signed, text_message, webhook_body
from tests.conftest import Services
from tests.integration.conftest import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    Pipeline,
    PipelineFactory,
    graph_token,
    service_env,
)

pytestmark = pytest.mark.integration

WAIT_QUEUE = "hiker.timers.wait.1500ms"  # the pipeline's idle timeout is 1.5 s


def find(findings: list[Finding], check: str) -> Finding:
    matches = [f for f in findings if f.check == check]
    assert matches, f"no {check!r} row in {[f.check for f in findings]}"
    return matches[0]


def base_env(amqp_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    env = service_env(amqp_url, redis_url, redis_prefix)
    del env["HIKER_SEND_RATE_PER_SECOND"]  # the doctor sees the default pacing, as in a real setup
    # Nothing listens here: tests that do not start a Graph mock get a quick refusal.
    return env | {"HIKER_GRAPH_BASE_URL": "http://127.0.0.1:1/"}


async def queue_exists(amqp_url: str, name: str) -> bool:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def declare_misconfigured_queue(amqp_url: str, name: str) -> None:
    """``name`` as an old classic queue with no dead-letter exchange (timers would expire into
    nowhere); declaring it again with these arguments succeeds only if they are unchanged."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-max-length": 10})
    finally:
        await connection.close()


async def test_a_sound_setup_passes_and_the_cli_says_so(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline()
    options = DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, timeout=3)
    findings = await diagnose(pipeline.env, options)
    assert [f for f in findings if f.status is not Status.OK] == []
    assert exit_code(findings) == 0
    checks = {f.check for f in findings}
    queues = {spec.name for spec in topology.EXCHANGES} | {
        "hiker.conversation.inbound",
        "hiker.conversation.timers",
        "hiker.sender.outbox",
        "hiker.sender.parked",
        "hiker.inspect",
        "hiker.poison",
        WAIT_QUEUE,
    }
    assert {name for name in queues if not any(c.endswith(name) for c in checks)} == set()
    assert "echoed the challenge" in find(findings, "ingress handshake").detail
    assert PHONE_NUMBER_ID in find(findings, "graph: phone number id").detail

    # The same through the command line, as an operator (or a deploy job) runs it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    env.update(pipeline.env, HIKER_PHONE_NUMBER_ID=PHONE_NUMBER_ID)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "doctor", "--json", "--ingress-url", pipeline.webhook_url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    report = json.loads(stdout)
    assert report["ok"] is True
    assert {row["status"] for row in report["checks"]} == {"OK"}
    for secret in (APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN, "guest:guest"):
        assert secret not in stdout.decode() + stderr.decode()


async def test_unreachable_redis_and_unknown_vhost_fail(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    env = base_env(amqp_url, "redis://127.0.0.1:1/0", redis_prefix)
    env["HIKER_AMQP_URL"] = amqp_url.rsplit("/", 1)[0] + "/hiker-test-no-such-vhost"
    findings = await diagnose(env, DoctorOptions("http://127.0.0.1:1/webhook", timeout=2))
    redis = find(findings, "redis")
    assert redis.status is Status.FAIL
    assert "not reachable at redis://127.0.0.1:1/0" in redis.detail
    assert "HIKER_REDIS_URL" in redis.fix
    rabbit = find(findings, "rabbitmq")
    assert rabbit.status is Status.FAIL
    assert "hiker-test-no-such-vhost" in rabbit.detail
    assert "add_vhost" in rabbit.fix
    assert exit_code(findings) == 1


async def test_wait_queue_declared_with_other_arguments_is_named(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    # The classic way timers stop: the wait queue exists, but without its dead-letter exchange
    # (here: an old classic queue), so expired timers go nowhere.
    await declare_misconfigured_queue(amqp_url, WAIT_QUEUE)
    env = base_env(amqp_url, redis_url, redis_prefix)
    findings = await diagnose(env, DoctorOptions("http://127.0.0.1:1/webhook", timeout=2))
    wait = find(findings, f"queue: {WAIT_QUEUE}")
    assert wait.status is Status.FAIL
    assert wait.detail.startswith("exists with different arguments")
    assert "inequivalent arg" in wait.detail
    assert f"delete_queue {WAIT_QUEUE}" in wait.fix
    assert "pending idle timers" in wait.fix
    assert exit_code(findings) == 1
    # Looking changed nothing: the queue keeps its arguments, and no other queue was created.
    await declare_misconfigured_queue(amqp_url, WAIT_QUEUE)
    assert find(findings, "queue: hiker.sender.outbox").status is Status.WARN
    assert not await queue_exists(amqp_url, "hiker.sender.outbox")


async def test_per_number_wait_queues_of_the_rules_file_are_checked(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # A number with its own idle timeout has its own wait queue; misdeclared, its timers stop
    # while every other number's still fire.
    own_queue = "hiker.timers.wait.45000ms"
    await declare_misconfigured_queue(amqp_url, own_queue)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "numbers:\n"
        f'  "{PHONE_NUMBER_ID}":\n'
        "    followup: {text: 'still there?', idle_timeout_seconds: 45}\n"
    )
    env = base_env(amqp_url, redis_url, redis_prefix) | {"HIKER_RULES_FILE": str(rules)}
    findings = await diagnose(env, DoctorOptions("http://127.0.0.1:1/webhook", timeout=2))
    assert find(findings, "rules file").status is Status.OK
    assert "1 phone numbers with their own follow-up" in find(findings, "rules file").detail
    own = find(findings, f"queue: {own_queue}")
    assert own.status is Status.FAIL
    assert own.detail.startswith("exists with different arguments")
    # The default timeout's queue is still checked (not declared yet in this vhost: a warning).
    assert find(findings, f"queue: {WAIT_QUEUE}").status is Status.WARN
    assert exit_code(findings) == 1


async def test_a_broken_rules_file_is_named_with_its_line(
    amqp_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: hi, match: sometimes, pattern: hi, reply: hey}\n")
    env = base_env(amqp_url, redis_url, redis_prefix) | {"HIKER_RULES_FILE": str(rules)}
    findings = await diagnose(env, DoctorOptions("http://127.0.0.1:1/webhook", timeout=2))
    row = find(findings, "rules file")
    assert row.status is Status.FAIL
    assert f"{rules}:2: rules[0].match" in row.detail
    assert exit_code(findings) == 1


async def test_missing_permissions_are_reported(
    amqp_url: str, redis_url: str, redis_prefix: str, services: Services
) -> None:
    if services.rabbitmqctl is None:
        pytest.skip("needs rabbitmqctl to change permissions")
    broker = Broker(amqp_url, client_name="doctor-test")
    await broker.connect(topology.SENDER_TOPOLOGY)
    await broker.close()
    vhost = amqp_url.rsplit("/", 1)[1]
    env = base_env(amqp_url, redis_url, redis_prefix)
    options = DoctorOptions("http://127.0.0.1:1/webhook", timeout=2)

    services.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", "^$", ".*")
    findings = await diagnose(env, options)
    commands = find(findings, f"exchange: {topology.COMMANDS_EXCHANGE}")
    assert commands.status is Status.FAIL
    assert commands.detail.startswith("no write permission")
    assert "set_permissions" in commands.fix

    services.rabbitmqctl("set_permissions", "-p", vhost, "guest", "^$", ".*", ".*")
    findings = await diagnose(env, options)
    outbox = find(findings, "queue: hiker.sender.outbox")
    assert outbox.status is Status.FAIL
    assert outbox.detail.startswith("no configure permission")
    assert exit_code(findings) == 1


async def test_wrong_access_token_and_verify_token_fail(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(services=("graph", "ingress"))
    env = {
        **pipeline.env,
        "HIKER_ACCESS_TOKEN": graph_token("an-expired-token"),
        "HIKER_VERIFY_TOKEN": "not-the-dashboard-one",
    }
    findings = await diagnose(env, DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, timeout=3))
    token = find(findings, "graph: access token")
    assert token.status is Status.FAIL
    assert "code 190" in token.detail
    assert "renew HIKER_ACCESS_TOKEN" in token.fix
    handshake = find(findings, "ingress handshake")
    assert handshake.status is Status.FAIL
    assert "403" in handshake.detail
    assert exit_code(findings) == 1
    shown = json.dumps([f.__dict__ for f in findings], default=str)
    assert graph_token("an-expired-token") not in shown
    assert "not-the-dashboard-one" not in shown


async def test_missing_app_secret_names_the_variable(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    env = base_env(amqp_url, redis_url, redis_prefix)
    del env["HIKER_APP_SECRET"]
    findings = await diagnose(env, DoctorOptions("http://127.0.0.1:1/webhook", timeout=2))
    ingress = find(findings, "config: ingress")
    assert ingress.status is Status.FAIL
    assert ingress.detail == "HIKER_APP_SECRET is required but not set"
    assert find(findings, "config: sender").status is Status.OK
    assert find(findings, "redis").status is Status.OK
    assert exit_code(findings) == 1


async def test_no_phone_number_id_is_a_warning_not_a_failure(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline()
    findings = await diagnose(pipeline.env, DoctorOptions(pipeline.webhook_url, None, timeout=3))
    phone = find(findings, "graph: phone number id")
    assert phone.status is Status.WARN
    assert "--phone-number-id" in phone.fix
    assert find(findings, "graph: access token").status is Status.OK
    assert exit_code(findings) == 0
    assert exit_code(findings, strict=True) == 1


def stack_of(pipeline: Pipeline) -> tuple[ServiceEndpoint, ...]:
    return (
        ServiceEndpoint("ingress", pipeline.url("ingress-ops", "/")),
        ServiceEndpoint("conversation", pipeline.url("conversation", "/")),
        ServiceEndpoint("sender", pipeline.url("sender", "/")),
    )


def container_env(pipeline: Pipeline, service: str) -> dict[str, str]:
    """What compose gives one container: the shared variables and that service's own."""
    shared = ("HIKER_AMQP_URL", "HIKER_REDIS_URL", "HIKER_REDIS_PREFIX")
    own = {
        "ingress": ("HIKER_APP_SECRET", "HIKER_VERIFY_TOKEN"),
        "conversation": ("HIKER_IDLE_TIMEOUT_SECONDS",),
        "sender": ("HIKER_ACCESS_TOKEN", "HIKER_GRAPH_BASE_URL", "HIKER_SEND_RATE_PER_SECOND"),
    }[service]
    return {name: pipeline.env[name] for name in (*shared, *own)}


async def test_in_one_container_of_a_stack_the_others_rows_are_checked_there(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline()
    options = DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, 3, stack_of(pipeline))

    # In the sender's container: its own rows, every service's readiness, the shared topology.
    findings = await diagnose(container_env(pipeline, "sender"), options)
    assert [f for f in findings if f.status in (Status.FAIL, Status.WARN)] == []
    assert exit_code(findings, strict=True) == 0
    for service in ("ingress", "conversation", "sender"):
        assert find(findings, f"service: {service}").status is Status.OK
    assert find(findings, "config: sender").status is Status.OK
    assert find(findings, "graph: phone number id").status is Status.OK
    assert find(findings, "queue: hiker.sender.outbox").status is Status.OK
    handshake = find(findings, "ingress handshake")
    assert handshake.status is Status.SKIP
    assert "checked in the ingress container" in handshake.detail
    assert "docker compose exec ingress hiker doctor --compose" in handshake.fix
    assert find(findings, "config: conversation").status is Status.SKIP
    assert find(findings, "queue: idle-timer wait queues").status is Status.SKIP

    # In conversation's: the sender's rows are its container's business, the wait queue ours.
    findings = await diagnose(container_env(pipeline, "conversation"), options)
    assert [f for f in findings if f.status in (Status.FAIL, Status.WARN)] == []
    assert find(findings, f"queue: {WAIT_QUEUE}").status is Status.OK
    token = find(findings, "graph: access token")
    assert token.status is Status.SKIP
    assert "checked in the sender container" in token.detail

    # In ingress's: the handshake runs here.
    findings = await diagnose(container_env(pipeline, "ingress"), options)
    assert find(findings, "ingress handshake").status is Status.OK
    assert exit_code(findings, strict=True) == 0


async def test_a_stopped_service_of_the_stack_fails_its_row(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline()
    stack = stack_of(pipeline)
    await pipeline.stop("sender")
    findings = await diagnose(
        container_env(pipeline, "conversation"),
        DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, 2, stack),
    )
    sender = find(findings, "service: sender")
    assert sender.status is Status.FAIL
    assert "no answer" in sender.detail
    assert "docker compose logs sender" in sender.fix
    assert exit_code(findings) == 1


async def test_cli_checks_a_stack_from_one_container(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    env.update(container_env(pipeline, "sender"), HIKER_PHONE_NUMBER_ID=PHONE_NUMBER_ID)
    services = [f"--service={s.name}={s.url}" for s in stack_of(pipeline)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "doctor", "--json", "--strict", *services,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    rows = {row["check"]: row["status"] for row in json.loads(stdout)["checks"]}
    assert rows["service: sender"] == "OK"
    assert rows["ingress handshake"] == "SKIP"
    assert ACCESS_TOKEN not in stdout.decode() + stderr.decode()


async def test_an_ingress_given_several_app_secrets_passes_and_takes_each(
    make_pipeline: PipelineFactory,
) -> None:
    # Numbers under a second Meta app, or a rotation: the list alone, HIKER_APP_SECRET blank.
    second = "second-app-secret-4d8b1e6a2c9f7305"
    pipeline = await make_pipeline(
        services=("ingress",), HIKER_APP_SECRET="", HIKER_APP_SECRETS=f"{APP_SECRET}, {second}"
    )
    body = encode(webhook_body(messages_change([text_message("15550009987", "hello")])))
    for secret, expected in ((APP_SECRET, 200), (second, 200), ("a-retired-secret", 403)):
        status, _ = await post_signed(pipeline.session, pipeline.webhook_url, body, secret)
        assert status == expected, secret
    findings = await diagnose(pipeline.env, DoctorOptions(pipeline.webhook_url, None, timeout=3))
    assert find(findings, "config: ingress").status is Status.OK
    assert find(findings, "ingress handshake").status is Status.OK
    assert second not in json.dumps([f.__dict__ for f in findings], default=str)
