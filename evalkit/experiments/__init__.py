"""The seed's experiments (audio length, resolution, interpolation, averages, unseen identities) and the comparison
of two runs, each adding a section to a report; ``evalkit.experiments.cli`` holds their click commands."""
