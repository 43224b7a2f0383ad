"""Heterogeneous recurrent SNNs (HRSNN, CHRSNN) and Lyapunov Noise Pruning (LNP).

A reconstruction of Chakraborty et al., "Sparse Spiking Neural Network: Exploiting
Heterogeneity in Timescales for Pruning Recurrent SNN" (ICLR 2024), whose code is not public;
every choice is stated in the module docstrings and in docs/search.md ("LNP").

- :mod:`.lyapunov`: the Lyapunov spectrum by QR re-orthonormalisation along a trajectory;
- :mod:`.hrsnn`: the network (per-neuron gamma-distributed membrane time constants, random or
  clustered small-world recurrence), its surrogate Jacobian, and its IR ticket (RLIF layer);
- :mod:`.prune`: the four LNP steps and the baselines (random, activity, IMP);
- :mod:`.tasks`: sequential digits, Lorenz-63 and Mackey-Glass, LI readouts trained by ridge;
- :mod:`.run`: the pipeline behind ``slt search --method lnp`` (checkpoints, resume).

Imports numpy at load time; scipy, networkx and optuna when used.
"""
