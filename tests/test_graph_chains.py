"""The report's rephrase chains: the dict walk gives the chains the networkx walk it replaced gives."""
import networkx as nx
import numpy as np

from selflearn.stages import graph


def chains_by_networkx(src, dst, limit=20):
    """The networkx walk the report used before (the oracle)."""
    rephrase = nx.DiGraph(zip(src, dst))
    chains = []
    for start in sorted(n for n in rephrase if rephrase.in_degree(n) == 0):
        path = [start]
        while len(path) < 6:
            nxt = sorted(v for v in rephrase.successors(path[-1]) if v not in path)
            if not nxt:
                break
            path.append(nxt[0])
        if len(path) >= 3:
            chains.append(path)
    return sorted(chains, key=lambda p: (-len(p), p))[:limit]


def test_chains_match_the_networkx_walk_on_random_graphs_with_cycles_self_loops_and_repeated_edges():
    rng = np.random.default_rng(7)
    longest = 0
    for trial in range(60):
        n, m = int(rng.integers(2, 40)), int(rng.integers(1, 80))
        names = [f"n{i:02d}" for i in range(n)]
        src = [names[i] for i in rng.integers(0, n, m)]
        dst = [names[i] for i in rng.integers(0, n, m)]
        want = chains_by_networkx(src, dst, limit=5)
        assert graph.longest_chains(src, dst, limit=5) == want
        longest = max(longest, max((len(c) for c in want), default=0))
    assert longest == 6   # the random graphs did reach the walk's length cap


def test_a_chain_follows_the_smallest_next_text_and_stops_at_a_cycle():
    src = ["a", "b", "b", "c", "x", "y"]
    dst = ["b", "d", "c", "a", "y", "x"]   # a -> b -> {c, d}; c -> a closes a cycle; x <-> y has no start
    assert graph.longest_chains(src, dst) == chains_by_networkx(src, dst) == []   # every node is led to
    src, dst = [*src, "s"], [*dst, "a"]
    assert graph.longest_chains(src, dst) == [["s", "a", "b", "c"]]
