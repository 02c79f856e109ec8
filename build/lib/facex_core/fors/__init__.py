"""Facial Omni-Representation Steering: the task table, the Representation Assembler and
the Region Assembler that composes the inpainting reference."""
