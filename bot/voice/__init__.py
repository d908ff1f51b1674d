"""Voice channel sessions: joining, the per-guild play queue, and the player-thread audio source."""
