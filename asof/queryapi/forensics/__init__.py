"""Finding out what happened and putting it right: history, diff, restore, replay, the
timeline picture and the integrity checks."""
