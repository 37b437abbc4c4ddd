"""trillm."""
