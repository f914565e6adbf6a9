"""What the admin pages and the JSON API do, without Flask: plain functions over the database, scoped to a workspace."""
