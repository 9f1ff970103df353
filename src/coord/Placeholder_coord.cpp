// placeholder until coord lands
