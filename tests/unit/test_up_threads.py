"""`rsim up`'s CPU split (issue 26): beside the embedded reasoner the planner gets one torch thread unless the user
says otherwise; in front of a remote reasoner torch's default holds."""

from clients.up import planner_cpu_threads


def test_one_planner_thread_beside_the_embedded_reasoner(monkeypatch):
    monkeypatch.delenv("RSIM_PLANNER_THREADS", raising=False)
    assert planner_cpu_threads(embedded_reasoner=True) == {"RSIM_PLANNER_THREADS": "1"}
    assert planner_cpu_threads(embedded_reasoner=False) == {}
    monkeypatch.setenv("RSIM_PLANNER_THREADS", "3")
    assert planner_cpu_threads(embedded_reasoner=True) == {"RSIM_PLANNER_THREADS": "3"}
