"""The validator database: models and the repository. All SQL of the project lives here."""
