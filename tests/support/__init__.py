"""What tests share: polling a condition (`poll`), a fake clock (`clock`)."""
