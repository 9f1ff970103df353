// placeholder until data lands
