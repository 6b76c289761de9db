"""Widgets shared by the screens: the virtualised table, panels, charts, bars."""
