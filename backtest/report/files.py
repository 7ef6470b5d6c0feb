"""The figure files the report layer writes into a sweep or walk-forward folder. No matplotlib
here: side_draw.py names them in the command's process, before anything is drawn."""
HEATMAP = "heatmap.png"  # in a sweep folder
WALK_FORWARD_PNG = "oos_equity.png"  # in a walk-forward folder
