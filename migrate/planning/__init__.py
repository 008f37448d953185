"""Stage 3, plan: the target model's weights and the plan checked on metadata alone."""
