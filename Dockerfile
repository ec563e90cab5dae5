FROM python:3.11-slim
WORKDIR /opt/conveyor
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
ENV PYTHONPATH=/opt/conveyor
