"""The executable SETH chain k-SAT -> OV -> attention -> attention gradient -> LoRA gradient
(docs/theory.md §6; AS24 (arXiv:2402.04497) App. E, Hu et al. (arXiv:2406.03136) Thm 5.1).

* `reductions.problems.*`: one module per problem (k-CNF, OV, the Max-IP / Gap-Hamming gadgets,
  AAttC, AAttLGC, ALoRAGC): an instance record, an exact reference solver, and oracle adapters that
  turn any harness solver (`harness.solvers.get_solver`) into an oracle for the problem.
* `reductions.arrows.*`: one module per arrow. Every arrow has `reduce(source) -> target`,
  `decode(target, solution, oracle=None) -> source solution`, `required_accuracy(target)` and
  `solve(source, oracle)`; an arrow never calls a solver itself, the caller passes the oracle in.
* `reductions.graph`: the networkx DiGraph of problems and arrows; a path composes into one
  end-to-end reduction (`compose`).
* `reductions.sat_sources`: seeded SAT sources (planted, UNSAT, CNFgen families, DIMACS).
* `reductions.chain`: the three end-to-end routes used by `lora-harness solve-sat`.
"""
