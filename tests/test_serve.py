"""avs serve's JSON API, through FastAPI's test client, on the SIMULATED demo: search, topics with judgments and
measures, run comparison, export, thumbnails, and the 4xx answers to bad requests."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from avs.demo.builtin import ensure
from avs.engine.searcher import Searcher
from avs.eval.infap import evaluate_runs
from avs.formats.runs import read_run, validate
from avs.formats.topics import read_topics
from avs.serve.app import create_app
from avs.serve.session import ServeConfig, ServeSession

from conftest import two_demo_runs


@pytest.fixture(scope="module")
def demo():
    return ensure()


@pytest.fixture(scope="module")
def runs(demo, tmp_path_factory):
    return two_demo_runs(tmp_path_factory.mktemp("runs"))[0]


@pytest.fixture(scope="module")
def client(demo, runs, tmp_path_factory):
    thumbs = tmp_path_factory.mktemp("thumbs")
    (thumbs / "shot00417_2_RKF.jpg").write_bytes(b"\xff\xd8\xff\xe0 a keyframe")
    (tmp_path_factory.getbasetemp() / "secret.jpg").write_bytes(b"secret")
    session = ServeSession.open(ServeConfig(runs=runs, thumbs=thumbs))
    return TestClient(create_app(session))


def test_search(client, demo):
    r = client.get("/api/search", params={"q": "a person paddling kayak in the water", "k": 1000})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "a person paddling kayak in the water" and body["elapsed_ms"] > 0
    assert [x["rank"] for x in body["results"]] == list(range(1, 1001))
    hits = Searcher(demo.model, demo.index).query("a person paddling kayak in the water", 1000)
    assert [x["shot"] for x in body["results"]] == hits.shots
    np.testing.assert_array_equal([x["score"] for x in body["results"]], hits.scores)
    assert client.get("/api/search", params={"q": "kayak"}).json()["results"][99]["rank"] == 100  # k=100 default


@pytest.mark.parametrize(
    "path, params, status, message",
    [
        ("/api/search", {"q": "   ", "k": 5}, 400, "empty query"),
        ("/api/search", {"q": "kayak", "k": 0}, 400, "k: Input should be greater than or equal to 1"),
        ("/api/search", {"q": "kayak", "k": 1001}, 400, "k: Input should be less than or equal to 1000"),
        ("/api/search", {"k": 5}, 400, "q: Field required"),
        ("/api/topics/9999", {}, 404, "unknown topic 9999"),
        ("/api/topics/abc", {}, 400, "num: Input should be a valid integer"),
        ("/api/compare", {"a": "laff", "b": "nope", "topic": 641}, 404, "unknown run 'nope'"),
        ("/api/export", {"format": "pdf"}, 400, "format 'pdf'"),
        ("/api/export", {"year": 99999}, 400, "year 99999: an AVS run's year, from 2016 on"),
        ("/thumbs/..%2Fsecret.jpg", {}, 404, "Not Found|no such thumbnail"),
        ("/thumbs/secret.jpg", {}, 404, "no such thumbnail"),
        ("/nowhere", {}, 404, "Not Found"),
    ],
)
def test_bad_requests_are_one_json_message(client, path, params, status, message):
    r = client.get(path, params=params)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json" and list(r.json()) == ["error"]
    assert re.search(message, r.json()["error"]), r.json()


def test_topic_list_has_labels(client):
    topics = client.get("/api/topics").json()
    assert topics["topic_set"] == "tv20" and len(topics["topics"]) == 20
    assert topics["topics"][1] == {
        "num": 642,
        "text": "a person paddling kayak in the water",
        "labels": ["action", "location", "object", "person"],
    }


def test_topic_ranking_marks_and_measures_equal_the_evaluator(client, runs):
    body = client.get("/api/topics/641").json()
    assert len(body["results"]) == 1000 and body["labels"] == ["location", "object"]
    expected = evaluate_runs([runs[0]], ensure().qrels)["laff"].per_topic.loc["1641"]
    for m in ("infAP", "infNDCG", "iP10", "iP100", "iP1000"):
        assert body["measures"][m] == pytest.approx(float(expected[m]), abs=1e-12), m
    run = read_run(runs[0])
    assert [x["shot"] for x in body["results"]] == [i.shot for i in run.topics[641].items]
    from trec_eval_compat.evaluate import Qrels

    judged = {s: j for s, (_, j) in Qrels.read(ensure().qrels).topics["1641"].shots.items()}
    for x in body["results"]:
        j = judged.get(x["shot"])
        assert x["judgment"] == ("unjudged" if j is None or j < 0 else "relevant" if j > 0 else "not relevant")
    assert {x["judgment"] for x in body["results"]} == {"relevant", "not relevant", "unjudged"}


def test_compare_two_runs(client, runs):
    body = client.get("/api/compare", params={"a": "laff", "b": "other", "topic": 642}).json()
    laff = [i.shot for i in read_run(runs[0]).topics[642].items]
    assert body["overlap"] == 900 and body["b"]["only_here"] == []
    assert [x["shot"] for x in body["a"]["only_here"]] == laff[900:]
    assert {x["judgment"] for x in body["a"]["only_here"]} <= {"relevant", "not relevant", "unjudged"}
    evals = evaluate_runs(list(runs), ensure().qrels)
    assert body["a"]["infAP"] == pytest.approx(float(evals["laff"].per_topic.loc["1642", "infAP"]), abs=1e-12)
    assert body["b"]["infAP"] == pytest.approx(float(evals["other"].per_topic.loc["1642", "infAP"]), abs=1e-12)
    assert body["a"]["infAP"] != body["b"]["infAP"]
    assert len(body["per_topic"]) == 20 and set(body["per_topic"][0]) == {"topic", "laff", "other"}
    png = client.get("/api/compare/plot.png", params={"a": "laff", "b": "other"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_export_is_the_search_run(client, runs, tmp_path):
    r = client.get("/api/export", params={"format": "xml", "pid": "whatever"})
    assert r.status_code == 200 and 'filename="sim_laff_tv20.xml"' in r.headers["content-disposition"]
    path = tmp_path / "exported.xml"
    path.write_bytes(r.content)
    assert not validate(path, topics=read_topics("tv20"))
    exported, searched = read_run(path), read_run(runs[0])
    assert exported.info.pid == "SIMULATED-demo"  # a demo run says so, whatever was asked
    assert {n: [i.shot for i in t.items] for n, t in exported.topics.items()} == {
        n: [i.shot for i in t.items] for n, t in searched.topics.items()
    }
    trec = client.get("/api/export", params={"format": "trec"}).text.splitlines()
    assert len(trec) == 20_000 and trec[0].split()[:4] == ["1641", "Q0", searched.topics[641].items[0].shot, "1"]


def test_thumbnails_only_from_the_folder(client):
    r = client.get("/thumbs/shot00417_2_RKF.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    hit = client.get("/api/topics/641", params={"k": 1}).json()["results"][0]
    assert hit["shot"] == "shot00417_2" and hit["thumbnail"] == "/thumbs/shot00417_2_RKF.jpg"


def test_page_static_files_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>avs" in page.text and "cdn" not in page.text.lower()
    for name in ("app.js", "style.css", "api.html"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "https://" not in r.text and "//cdn" not in r.text  # nothing from elsewhere
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/topics", "/api/topics/{num}", "/api/compare", "/api/export"} <= set(spec["paths"])
    assert client.get("/api/docs").status_code == 200


def test_opening_errors(tmp_path, demo):
    from avs.errors import InputError

    with pytest.raises(InputError, match="give both a model and its index"):
        ServeSession.open(ServeConfig(model=demo.model))
    with pytest.raises(InputError, match="not a folder"):
        ServeSession.open(ServeConfig(thumbs=tmp_path / "none"))
    other = tmp_path / "other.h5"
    from avs.formats.store import write_store

    write_store(other, ["shot1_1"], {"x": np.zeros((1, 4), np.float32)}, name="other")
    with pytest.raises(InputError, match="is not the collection index"):
        ServeSession.open(ServeConfig(demo.model, demo.index, store=other))


def test_cli_usage_errors(run_cli, demo, tmp_path):
    r = run_cli("serve", "--model", demo.model)
    assert r.exit_code == 2 and "give both --model and --index" in r.stderr
    r = run_cli("serve", "--thumbs", tmp_path / "none", "--port", "1")
    assert r.exit_code == 2 and "none: not a folder (--thumbs)" in r.stderr


def test_a_taken_port_is_one_line():
    import socket

    from avs.errors import InputError
    from avs.serve.app import _listening_socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}: .*pick another --port"):
            _listening_socket("127.0.0.1", port)
    with pytest.raises(InputError, match="--host 999.1.1.1"):
        _listening_socket("999.1.1.1", 8000)
