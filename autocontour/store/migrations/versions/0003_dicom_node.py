"""The DICOM node's records: each reception of a series (``dicom_series``) and each send of its
contours to a destination (``dicom_sends``).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dicom_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("peer", sa.String(length=128), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("body_part", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("received", sa.DateTime(), nullable=False),
        sa.Column("last_received", sa.DateTime(), nullable=False),
        sa.Column("completed", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dicom_series_series_uid", "dicom_series", ["series_uid"])
    op.create_index("ix_dicom_series_state", "dicom_series", ["state"])
    op.create_table(
        "dicom_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("send_seg", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("next_attempt", sa.DateTime(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("sent", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["dicom_series.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dicom_sends_series_id", "dicom_sends", ["series_id"])
    op.create_index("ix_dicom_sends_state", "dicom_sends", ["state"])


def downgrade() -> None:
    op.drop_index("ix_dicom_sends_state", table_name="dicom_sends")
    op.drop_index("ix_dicom_sends_series_id", table_name="dicom_sends")
    op.drop_table("dicom_sends")
    op.drop_index("ix_dicom_series_state", table_name="dicom_series")
    op.drop_index("ix_dicom_series_series_uid", table_name="dicom_series")
    op.drop_table("dicom_series")
